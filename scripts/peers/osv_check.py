#!/usr/bin/env python3
"""The Python peer of `airlock advisories check` (scripts/bench-peers.sh).

What a Python user would write to check pins against the pypa advisory
database: read `<package> <version>` lines from stdin, load only the
queried packages' records (vulns/<package>/*.yaml, the database's own
layout, so a small query reads a few files), and evaluate each record's
OSV ranges with `packaging`. Prints one line per finding
(`<package> <version> <id>`), sorted; withdrawn records and aliases of a
finding are left out, as airlock does, so the bench can compare counts.

usage: osv_check.py VULNS_DIR < pins
"""
import glob
import os
import re
import sys

import yaml
from packaging.version import InvalidVersion, Version

try:
    Loader = yaml.CSafeLoader
except AttributeError:
    Loader = yaml.SafeLoader


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def affected(entry, version):
    """OSV's rule for one `affected` entry: listed, or inside an ECOSYSTEM range."""
    if str(version) in (entry.get("versions") or []):
        return True
    for r in entry.get("ranges") or []:
        if r.get("type") != "ECOSYSTEM":
            continue
        events = []
        for e in r.get("events") or []:
            for kind, v in e.items():
                try:
                    events.append((Version("0") if v == "0" else Version(str(v)), kind))
                except InvalidVersion:
                    pass
        events.sort(key=lambda e: e[0])
        inside = False
        for at, kind in events:
            if at > version and kind == "introduced":
                break
            if kind == "introduced" and at <= version:
                inside = True
            elif kind == "fixed" and at <= version:
                inside = False
            elif kind == "last_affected" and at < version:
                inside = False
            elif kind == "limit" and at <= version:
                inside = False
        if inside:
            return True
    return False


def main():
    vulns = sys.argv[1]
    dirs = {normalize(d): d for d in os.listdir(vulns)}
    records = {}
    findings = []
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2:
            continue
        name, raw = normalize(parts[0]), parts[1]
        try:
            version = Version(raw)
        except InvalidVersion:
            continue
        if name not in records:
            records[name] = []
            if name in dirs:
                for path in sorted(glob.glob(os.path.join(vulns, dirs[name], "*.yaml"))):
                    with open(path) as f:
                        records[name].append(yaml.load(f, Loader=Loader))
        seen = set()
        for rec in records[name]:
            # A withdrawn record affects nothing; a record that is an alias of
            # one already found (PYSEC twins) is the same finding.
            ids = {rec["id"], *(rec.get("aliases") or [])}
            if rec.get("withdrawn") or ids & seen:
                continue
            for entry in rec.get("affected") or []:
                pkg = entry.get("package") or {}
                if normalize(pkg.get("name", "")) == name and affected(entry, version):
                    findings.append(f"{name} {raw} {rec['id']}")
                    seen |= ids
                    break
    sys.stdout.write("".join(f + "\n" for f in sorted(findings)))


if __name__ == "__main__":
    main()
