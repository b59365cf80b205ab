"""The review loop: a web page where a privacy officer checks and corrects spans (app.py), decisions kept in Delta
(store.py), which notes to review (sampling.py), what the decisions say (stats.py), and what they feed back:
dictionary edits and real gold (export.py)."""
