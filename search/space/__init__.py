"""The space file: its schema (`schema`), reading YAML as written and bounded
(`yamltext`) with errors that name the file, key and line (`file`), the checks beyond
the schema, the study's name among them (`check`), and sampling a trial's parameters
(`sampling`).

May import: search.params and the foundation (errors, names). Nothing that trains or
records.
"""
