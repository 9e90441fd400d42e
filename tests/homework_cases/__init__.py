"""Wrong answers to the homework (notebooks/homework/hwNN_<slug>.ipynb), one module per homework: ``hwNN.py``.

Each module defines ``WRONG_ANSWERS: dict[str, list[tuple[str, str, str]]]``, mapping every question name of the
homework to at least one ``(label, source, message)``: ``source`` replaces the question's solution cell (it must
define the same functions), and ``message`` is a substring of the failure message that the question's tests
must report for it. ``tests/test_homework.py`` grades every entry and checks both.
"""
