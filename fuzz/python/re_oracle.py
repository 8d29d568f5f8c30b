"""Answer searches with Python's re, as fail2ban compiles its regexes.

One JSON request per line on stdin: {"p": pattern, "m": multiline, "s": text}.
One JSON reply per line on stdout: {"err": message} when Python refuses the
pattern, {"m": null} for no match, or {"m": [[start, end] or null, ...]}
with the span of every group, group 0 first.
"""
import json
import re
import sys
import warnings

warnings.simplefilter("ignore")
cache = {}
for line in sys.stdin:
    request = json.loads(line)
    key = (request["p"], request["m"])
    try:
        regex = cache.get(key)
        if regex is None:
            regex = re.compile(request["p"], re.MULTILINE if request["m"] else 0)
            if len(cache) > 1000:
                cache.clear()
            cache[key] = regex
        found = regex.search(request["s"])
        if found is None:
            reply = {"m": None}
        else:
            reply = {"m": [None if found.span(g)[0] < 0 else list(found.span(g))
                           for g in range(regex.groups + 1)]}
    except Exception as e:  # re.error, RecursionError, OverflowError...
        reply = {"err": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
