"""A small built-in corpus for the tiny tokenizer and the warm-start transcripts.

Shell commands, English, JSON and Python: the kinds of text agent transcripts are made of.
Nothing here is a task's solution; it is generic material so common words and commands become
single tokens.
"""

from __future__ import annotations

import json

SHELL_COMMANDS: tuple[str, ...] = (
    "ls",
    "ls -la",
    "ls -l /app",
    "ls /tmp",
    "pwd",
    "cat README.md",
    "cat /etc/os-release",
    "cat hello.txt",
    "cat notes.txt",
    "echo hello",
    "echo 'hello world'",
    "echo done",
    "echo $HOME",
    "printf 'hello\\n' > hello.txt",
    "printf 'line one\\nline two\\n' > notes.txt",
    "echo 'print(1 + 1)' > main.py",
    "echo hello > out.txt",
    "touch empty.txt",
    "mkdir -p src",
    "mkdir -p data/raw",
    "mkdir build",
    "cd /app && ls",
    "head -n 5 data.csv",
    "tail -n 20 log.txt",
    "wc -l notes.txt",
    "grep -rn TODO .",
    "grep -n error log.txt",
    "find . -name '*.py'",
    "find /app -type f",
    "python3 main.py",
    "python3 -c 'print(42)'",
    "python3 -m pytest -q",
    "cp hello.txt backup.txt",
    "mv out.txt result.txt",
    "rm -f tmp.txt",
    "sort names.txt | uniq",
    "sed -n '1,10p' main.py",
    "sed -i 's/foo/bar/g' config.txt",
    "git status",
    "git diff",
    "git log --oneline | head",
    "date",
    "whoami",
    "uname -a",
    "df -h",
    "du -sh .",
    "env | sort",
    "which python3",
    "chmod +x run.sh",
    "./run.sh",
    "tar -czf archive.tar.gz src",
    "echo 'x=1' >> config.txt",
    "cat > greet.sh <<'EOF'\necho hi\nEOF",
)

ENGLISH: tuple[str, ...] = (
    "You are a helpful assistant that solves tasks in a Linux terminal.",
    "Create a file named hello.txt that contains the word hello.",
    "List the files in the current directory and tell me how many there are.",
    "Write a Python script that prints the numbers from one to ten.",
    "The task is complete. The file was created with the requested content.",
    "I will first look at the files in the working directory, then make the change.",
    "Let me check the contents of the file before editing it.",
    "The command finished successfully and printed the expected output.",
    "Please fix the failing test and make sure every test passes.",
    "There is a bug in the function: it returns the wrong value for empty input.",
    "Read the configuration, update the value and save the file.",
    "Done. Everything you asked for is in place.",
    "The quick brown fox jumps over the lazy dog.",
    "Summarize what you changed and why it works.",
    "Count the lines in the log file that contain the word error.",
    "Rename the output file and move it into the results directory.",
    "When you are finished, print COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT.",
    "Error: no such file or directory.",
    "Permission denied.",
    "command not found",
    "Traceback (most recent call last):",
    "All tests passed.",
)

JSON_SNIPPETS: tuple[str, ...] = (
    '{"name": "bash", "arguments": {"command": "ls -la"}}',
    '{"type": "function", "function": {"name": "bash", "description": "Run a shell command.", '
    '"parameters": {"type": "object", "properties": {"command": {"type": "string", '
    '"description": "The command to run."}}, "required": ["command"]}}}',
    '{"type": "function", "function": {"name": "read_file", "description": "Read a file.", '
    '"parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}}}',
    '{"id": "call_0", "type": "function", "function": {"name": "bash", "arguments": "{\\"command\\": \\"pwd\\"}"}}',
    '{"returncode": 0, "output": "hello\\n"}',
    '{"model": "local", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7}',
    '{"status": "ok", "count": 3, "items": ["a", "b", "c"], "nested": {"key": null, "flag": true}}',
)

PYTHON_SNIPPETS: tuple[str, ...] = (
    "def main() -> None:\n    print('hello')\n\n\nif __name__ == '__main__':\n    main()\n",
    "import os\nimport sys\n\nfor name in sorted(os.listdir('.')):\n    print(name)\n",
    "class Counter:\n    def __init__(self):\n        self.count = 0\n\n    def add(self, n=1):\n        self.count += n\n        return self.count\n",
    "def test_add():\n    assert add(1, 2) == 3\n",
    "with open('hello.txt', 'w') as f:\n    f.write('hello\\n')\n",
    "result = [x * x for x in range(10) if x % 2 == 0]\nprint(result)\n",
)

TOOL_OUTPUTS: tuple[str, ...] = (
    "README.md\nmain.py\nsrc\ntests",
    "total 12\ndrwxr-xr-x 2 root root 4096 Jan  1 00:00 .\ndrwxr-xr-x 1 root root 4096 Jan  1 00:00 ..\n"
    "-rw-r--r-- 1 root root    6 Jan  1 00:00 hello.txt",
    "/app",
    "hello",
    "hello world",
    "",
    "42",
    "root",
    "Linux",
    "cat: missing.txt: No such file or directory",
    "bash: foo: command not found",
    "3 notes.txt",
    "2",
    "done",
)


def corpus() -> list[str]:
    """Every built-in text, in a fixed order (the tokenizer is trained on it deterministically)."""
    texts: list[str] = []
    for group in (SHELL_COMMANDS, ENGLISH, JSON_SNIPPETS, PYTHON_SNIPPETS, TOOL_OUTPUTS):
        texts.extend(group)
    # Shell commands as they appear inside tool-call JSON (escaped quotes and newlines).
    texts.extend(json.dumps({"command": c}) for c in SHELL_COMMANDS)
    return texts
