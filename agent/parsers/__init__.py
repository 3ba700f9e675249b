"""Log parsers: each turns one platform's log lines (or files) into events. Small plugins, one
per format, each with a sample config in its docstring."""
