"""The space file: its schema (`schema`), reading YAML as written with errors that name
the file, key and line (`file`), the checks beyond the schema (`check`), and sampling a
trial's parameters (`sampling`).

May import: search.params and the foundation (errors, names). Nothing that trains or
records.
"""
