"""Print count, mean and max of the integers in a file (default: numbers.txt beside this script)."""

import sys
from pathlib import Path


def read_numbers(path):
    numbers = []
    for line in Path(path).read_text().splitlines():
        numbers.append(int(line))
    return numbers


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("numbers.txt")
    numbers = read_numbers(path)
    mean = sum(numbers) // len(numbers)
    print(f"count={len(numbers)} mean={mean:.2f} max={numbers[-1]}")


if __name__ == "__main__":
    main()
