"""A faithful model of the Python original (mikharkiv/macpaw-test-de, src/).

It keeps the original's design and its rules, so that bucketload can be
measured against it and can take over a database it wrote:

- the config: `ConfigParser(interpolation=None)`, a profile by `--profile`
  (default `default`), `--force` to process every listed file;
- the list: `http://{BUCKET_NAME}/{FILES_LIST_KEY}` read with urllib, decoded
  with BUCKET_ENCODING and split on '\\n' (a trailing newline gives an empty key,
  which fails its file, as in the original);
- the files: every new file processed at once with `asyncio.gather` on one
  aiohttp `ClientSession` (its default connector: 100 connections); when
  aiohttp is not installed, urllib in a pool of 100 threads stands in for it
  (same concurrency, said on stderr);
- per file: `json.loads`, a class per record type validated by exact Python
  types (`type(v) != field_type`), then one `executemany` of
  `INSERT OR REPLACE` per type on one sqlite3 connection; the file is then
  appended to processed.json, which is rewritten at once;
- derived columns by the original's rules: `original_title_normalized` is
  lower-cased, runs of spaces become `_`, then every `\\W` character is
  dropped; `is_awesome` is `size_bytes < 1_000_000`; `ingestion_time` is
  local time in DATE_STORE_FORMAT;
- one commit after all files.

DATABASE_NAME and PROCESSED_FILES_FILENAME resolve against the config file's
folder (the original resolved them against its checkout).

Usage: python3 tools/original/original.py --config PATH [--profile NAME] [--force]
"""

import argparse
import asyncio
import configparser
import json
import os
import re
import sqlite3
import sys
import urllib.request
from datetime import datetime

try:
    import aiohttp
except ImportError:  # pragma: no cover - depends on the machine
    aiohttp = None

CREATE = [
    """CREATE TABLE IF NOT EXISTS apps (name TEXT NOT NULL, genre TEXT NOT NULL, rating REAL NOT NULL,
    version TEXT NOT NULL, size_bytes INTEGER NOT NULL, is_awesome INTEGER NOT NULL, PRIMARY KEY (name, version));""",
    """CREATE TABLE IF NOT EXISTS movies (original_title TEXT NOT NULL, original_language TEXT NOT NULL,
    budget INTEGER NOT NULL, is_adult INTEGER NOT NULL, release_date TEXT NOT NULL,
    original_title_normalized TEXT NOT NULL, PRIMARY KEY (original_title_normalized, release_date));""",
    """CREATE TABLE IF NOT EXISTS songs (artist_name TEXT NOT NULL, title TEXT NOT NULL, year INTEGER NOT NULL,
    `release` TEXT NOT NULL, ingestion_time TEXT NOT NULL, PRIMARY KEY (artist_name, title));""",
]


class DataType:
    fields = {}
    table = ""

    def __init__(self, data, date_format):
        self._data = dict(data)
        self.is_valid = all(type(self._data.get(name)) == kind for name, kind in self.fields.items())
        if self.is_valid:
            self._process(date_format)

    def _process(self, date_format):
        pass

    @property
    def values(self):
        return [value for _, value in sorted(self._data.items())]


class Song(DataType):
    fields = {"artist_name": str, "title": str, "year": int, "release": str}
    table = "songs"

    def _process(self, date_format):
        self._data["ingestion_time"] = datetime.now().strftime(date_format)


class Movie(DataType):
    fields = {"original_title": str, "original_language": str, "budget": int, "is_adult": bool, "release_date": str}
    table = "movies"

    def _process(self, date_format):
        underscored = re.sub(r" +", "_", self._data["original_title"].lower())
        self._data["original_title_normalized"] = re.sub(r"\W", "", underscored)


class App(DataType):
    fields = {"name": str, "genre": str, "rating": float, "version": str, "size_bytes": int}
    table = "apps"

    def _process(self, date_format):
        self._data["is_awesome"] = self._data["size_bytes"] < 1_000_000


TYPES = {"app": App, "movie": Movie, "song": Song}


def insert_sql(cls):
    columns = sorted(list(cls.fields) + [{"songs": "ingestion_time", "movies": "original_title_normalized",
                                          "apps": "is_awesome"}[cls.table]])
    return "INSERT OR REPLACE INTO {} ({}) VALUES ({})".format(cls.table, ",".join(columns), ",".join("?" * len(columns)))


class Original:
    def __init__(self, profile, base, force):
        self.bucket = profile.get("BUCKET_NAME")
        self.list_key = profile.get("FILES_LIST_KEY")
        self.encoding = profile.get("BUCKET_ENCODING")
        self.date_format = profile.get("DATE_STORE_FORMAT")
        self.registry_path = os.path.join(base, profile.get("PROCESSED_FILES_FILENAME"))
        self.db = sqlite3.connect(os.path.join(base, profile.get("DATABASE_NAME")))
        for statement in CREATE:
            self.db.execute(statement)
        self.db.commit()
        try:
            with open(self.registry_path) as f:
                self.registry = json.loads(f.read())
            if type(self.registry) != list:
                self.registry = []
        except FileNotFoundError:
            self.registry = []
        self.force = force

    def files(self):
        with urllib.request.urlopen(f"http://{self.bucket}/{self.list_key}") as response:
            return response.read().decode(self.encoding).split("\n")

    def write(self, content):
        objects = []
        for obj in json.loads(content):
            cls = TYPES.get(obj.get("type", None))
            if cls is not None:
                item = cls(obj["data"], self.date_format)
                if item.is_valid:
                    objects.append(item)
        for cls in {type(o) for o in objects}:
            self.db.executemany(insert_sql(cls), [o.values for o in objects if type(o) == cls])

    def register(self, key):
        self.registry.append(key)
        with open(self.registry_path, "w") as f:
            f.write(json.dumps(self.registry))

    async def run(self):
        keys = [k for k in self.files() if self.force or k not in self.registry]
        if aiohttp is not None:
            async with aiohttp.ClientSession() as session:
                async def process(key):
                    async with session.get(f"http://{self.bucket}/{key}") as response:
                        content = await response.text()
                    self.write(content)
                    self.register(key)
                await asyncio.gather(*[process(k) for k in keys])
        else:
            print("original.py: aiohttp is not installed; urllib in 100 threads stands in for it", file=sys.stderr)
            loop = asyncio.get_running_loop()
            from concurrent.futures import ThreadPoolExecutor
            pool = ThreadPoolExecutor(max_workers=100)

            def get(key):
                with urllib.request.urlopen(f"http://{self.bucket}/{urllib.request.quote(key)}") as response:
                    return response.read().decode(response.headers.get_content_charset() or "utf-8")

            async def process(key):
                content = await loop.run_in_executor(pool, get, key)
                self.write(content)
                self.register(key)
            await asyncio.gather(*[process(k) for k in keys])
        self.db.commit()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    config = configparser.ConfigParser(interpolation=None)
    config.read(args.config)
    original = Original(config[args.profile], os.path.dirname(os.path.abspath(args.config)), args.force)
    asyncio.run(original.run())


if __name__ == "__main__":
    main()
