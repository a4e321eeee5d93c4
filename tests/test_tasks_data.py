"""The formal-language and MQAR generators: labels checked against independent definitions, lengths,
seeds, and the samplers the training loop reads."""

from __future__ import annotations

import pytest
import torch

from xlstm_edu.data import formal_languages as fl
from xlstm_edu.data.loader import IGNORE_INDEX
from xlstm_edu.data.recall import FILLER, mqar, mqar_batches


def _prefix_answers(name: str, symbols: list[int]) -> list[int | None]:
    """The answer for every prefix, by the task's definition read literally (string by string)."""
    out = []
    for t in range(1, len(symbols) + 1):
        s = symbols[:t]
        if name == "parity":
            out.append(sum(s) % 2)
        elif name == "even_pairs":
            pairs = sum(1 for a, b in zip(s, s[1:]) if a != b)  # "ab" and "ba" substrings
            out.append(int(pairs % 2 == 0))
        elif name == "cycle_navigation":
            out.append(sum({0: -1, 1: 0, 2: 1}[a] for a in s) % 5)
        else:  # modular arithmetic: Python evaluates * before + and -, and % 5 is in [0, 5)
            if t % 2 == 0:
                out.append(None)
                continue
            text = "".join(str(a) if i % 2 == 0 else "+-*"[a - 5] for i, a in enumerate(s))
            out.append(eval(text) % 5)  # noqa: S307 - digits and operators only
    return out


@pytest.mark.parametrize("name", fl.TASKS)
def test_running_labels_match_the_definition(name):
    task = fl.get_task(name)
    x, y = task.sample(16, 23, torch.Generator().manual_seed(3))
    assert x.shape == y.shape == (16, 23) and x.dtype == y.dtype == torch.int64
    assert 0 <= int(x.min()) and int(x.max()) < task.num_symbols
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        expected = [IGNORE_INDEX if a is None else a for a in _prefix_answers(name, row_x)]
        assert row_y == expected
    answered = y[y != IGNORE_INDEX]
    assert 0 <= int(answered.min()) and int(answered.max()) < task.num_classes
    assert task.chance == pytest.approx(1 / task.num_classes)


def test_modular_arithmetic_alternates_numbers_and_operators():
    x, _ = fl.get_task("modular_arithmetic").sample(64, 31, torch.Generator().manual_seed(0))
    assert int(x[:, ::2].max()) < 5 and int(x[:, 1::2].min()) >= 5
    assert set(x[:, 1::2].unique().tolist()) == {5, 6, 7}  # all three operators occur


def test_classes_are_balanced_enough_to_make_chance_the_baseline():
    for name in ("parity", "cycle_navigation"):
        task = fl.get_task(name)
        _, y = task.sample(512, 64, torch.Generator().manual_seed(0))
        freq = torch.bincount(y[:, 32:].reshape(-1), minlength=task.num_classes) / y[:, 32:].numel()
        assert float(freq.max() - freq.min()) < 0.03, name


def test_seeds_reproduce_and_differ():
    task = fl.get_task("parity")
    a = task.sample(4, 10, torch.Generator().manual_seed(1))
    b = task.sample(4, 10, torch.Generator().manual_seed(1))
    c = task.sample(4, 10, torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_length_batches_draw_the_training_lengths():
    sample = fl.length_batches("cycle_navigation", 8, 3, 6)
    g = torch.Generator().manual_seed(0)
    lengths = {sample(g)[0].shape[1] for _ in range(60)}
    assert lengths == {3, 4, 5, 6}
    with pytest.raises(ValueError, match="max_length"):
        fl.length_batches("parity", 8, 10, 5)
    with pytest.raises(ValueError, match="task must be one of"):
        fl.get_task("dyck")


# --- MQAR -------------------------------------------------------------------------------------------

def test_mqar_queries_ask_every_key_once_and_the_targets_are_their_values():
    B, N, T, V = 32, 6, 40, 64
    x, y = mqar(B, N, T, V, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (B, T)
    for row_x, row_y in zip(x.tolist(), y.tolist()):
        keys, values = row_x[0:2 * N:2], row_x[1:2 * N:2]
        assert len(set(keys)) == N and all(1 <= k < V // 2 for k in keys)
        assert len(set(values)) == N and all(V // 2 <= v < V for v in values)
        table = dict(zip(keys, values))
        asked = [t for t in range(T) if row_y[t] != IGNORE_INDEX]
        assert len(asked) == N and min(asked) >= 2 * N
        assert sorted(row_x[t] for t in asked) == sorted(keys)  # every key asked once
        for t in asked:
            assert row_y[t] == table[row_x[t]] == row_x[t + 1]  # the value, and it follows the query
        rest = set(range(2 * N, T)) - set(asked) - {t + 1 for t in asked}
        assert all(row_x[t] == FILLER for t in rest)


def test_mqar_query_positions_vary_and_seeds_reproduce():
    x1, y1 = mqar(64, 4, 64, 128, torch.Generator().manual_seed(5))
    x2, y2 = mqar(64, 4, 64, 128, torch.Generator().manual_seed(5))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    first_query = (y1 != IGNORE_INDEX).float().argmax(1)
    assert len(first_query.unique()) > 5  # not always at the same place
    sample = mqar_batches(8, 4, 16, 32)
    xb, yb = sample(torch.Generator().manual_seed(0))
    assert xb.shape == (8, 16) and int((yb != IGNORE_INDEX).sum()) == 8 * 4


@pytest.mark.parametrize("args, match", [
    ((4, 9, 15, 128), "at least 4 \\* num_pairs = 36"),
    ((4, 40, 200, 64), "only 31 keys"),
    ((0, 4, 16, 128), "batch_size must be a positive integer"),
])
def test_mqar_refuses_settings_that_cannot_work(args, match):
    with pytest.raises(ValueError, match=match):
        mqar(*args)
