#!/usr/bin/env python3
"""Checks tests/bench/readme_table.py on a small results.json (tests/bench/fixtures): the table
judges each goal from the figures, and the README block between the markers is replaced, the
rest of the text kept. Pure Python, no lab: python3 tests/bench/test_readme_table.py"""

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import readme_table  # noqa: E402

RESULTS = json.loads((HERE / "fixtures/results.json").read_text())


def row(table, label):
    """The cells of the first table row whose measure starts with label."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith(label.strip()):
            return cells
    raise AssertionError(f"no row {label!r} in\n{table}")


class Table(unittest.TestCase):
    def setUp(self):
        self.table = readme_table.render_table(RESULTS)

    def test_both_strategies_with_their_floor_and_capacity(self):
        self.assertIn("--strategy start-first", self.table)
        self.assertIn("--strategy stop-first", self.table)
        self.assertEqual(row(self.table, "  floor (6 batches x max(drain, boot))")[1], "30.00s")
        self.assertEqual(row(self.table, "  floor (6 batches x (drain + boot))")[1], "42.00s")
        # start-first held every instance: met; stop-first's capacity is shown, not judged.
        caps = [l for l in self.table.splitlines() if "capacity held" in l]
        self.assertIn("met (== 6)", caps[0])
        self.assertNotIn("met", caps[1])

    def test_goals_met_and_missed(self):
        self.assertEqual(row(self.table, "up, converged")[2], "met (<= 1)")
        self.assertTrue(row(self.table, "ratio 16/1 app hosts: status")[2].startswith("MISSED (<= 1.5)"))
        # The ratios to the ssh loop and ansible are judged at 16 app hosts only.
        self.assertEqual(row(self.table, "ssh loop")[2], "x1.20 of status")
        self.assertIn("x4.50 of status; met (>= 3)", self.table)
        self.assertIn("x4.00 of status; MISSED (>= 5)", self.table)
        self.assertIn("MISSED (< 40)", self.table)  # status at 16 hosts: 41 MiB
        self.assertEqual(row(self.table, "plan, 200 app hosts")[2], "met (< 0.1)")

    def test_readme_block_replaced_between_markers_only(self):
        text = f"# Title\n\nbefore\n\n{readme_table.BEGIN}\nold table\n{readme_table.END}\n\nafter\n"
        out = readme_table.replace_block(text, readme_table.block(RESULTS))
        self.assertTrue(out.startswith("# Title\n\nbefore\n\n" + readme_table.BEGIN))
        self.assertTrue(out.endswith(readme_table.END + "\n\nafter\n"))
        self.assertNotIn("old table", out)
        self.assertIn("revision `abc1234-dirty`", out)
        self.assertIn("AMD EPYC, 2 cores, 24 GiB, Linux 6.18.0", out)
        self.assertIn("load average (1/5/15 min) 2.1/3/4 at the start, 5.5/4/4.1 at the end", out)
        # Replacing again gives the same text: the markers stay.
        self.assertEqual(readme_table.replace_block(out, readme_table.block(RESULTS)), out)

    def test_readme_without_markers_is_refused(self):
        with self.assertRaises(ValueError):
            readme_table.replace_block("# no markers\n", readme_table.block(RESULTS))


if __name__ == "__main__":
    unittest.main()
