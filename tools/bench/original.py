"""The original design, in the original's language, for `deno task bench --real-sized`.

The Python original read `config.ini`, fetched `files_list.data`, skipped the
keys in `processed.json`, fetched each new file in turn, parsed it with
`json.loads`, checked each record's fields, derived the same columns, and
wrote each row with one `INSERT OR REPLACE` through Python's `sqlite3`,
committing at the end, then wrote `processed.json`. This script does the same
with the standard library only (urllib instead of requests), against the same
tables (the original's schema: no STRICT, no source_key).

Usage: python3 tools/bench/original.py BUCKET_URL DB_PATH
"""

import json
import re
import sqlite3
import sys
import unicodedata
import urllib.parse
import urllib.request
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS songs (artist_name TEXT, title TEXT, year INTEGER, release TEXT, ingestion_time TEXT,
  PRIMARY KEY (artist_name, title));
CREATE TABLE IF NOT EXISTS movies (original_title TEXT, original_language TEXT, budget INTEGER, is_adult INTEGER,
  release_date TEXT, original_title_normalized TEXT, PRIMARY KEY (original_title_normalized, release_date));
CREATE TABLE IF NOT EXISTS apps (name TEXT, genre TEXT, rating REAL, version TEXT, size_bytes INTEGER,
  is_awesome INTEGER, PRIMARY KEY (name, version));
"""

SPACES = re.compile(r"\s+")


def normalize(title):
    text = unicodedata.normalize("NFKC", title).lower()
    text = "".join(c for c in text if unicodedata.category(c)[0] in "LMN" or c.isspace())
    return SPACES.sub("_", text.strip())


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def main():
    base, db_path = sys.argv[1], sys.argv[2]
    db = sqlite3.connect(db_path)
    db.executescript(SCHEMA)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    listing = urllib.request.urlopen(urllib.parse.urljoin(base, "files_list.data")).read().decode()
    processed = []
    for key in [k.strip() for k in listing.split("\n") if k.strip()]:
        with urllib.request.urlopen(urllib.parse.urljoin(base, urllib.parse.quote(key))) as response:
            items = json.loads(response.read().decode("utf-8"))
        for item in items:
            data = item.get("data") if isinstance(item, dict) else None
            if not isinstance(data, dict):
                continue
            kind = item.get("type")
            if kind == "song":
                if (isinstance(data.get("artist_name"), str) and isinstance(data.get("title"), str)
                        and is_int(data.get("year")) and isinstance(data.get("release"), str)):
                    db.execute("INSERT OR REPLACE INTO songs VALUES (?, ?, ?, ?, ?)",
                               (data["artist_name"], data["title"], data["year"], data["release"], now))
            elif kind == "movie":
                if (isinstance(data.get("original_title"), str) and isinstance(data.get("original_language"), str)
                        and is_int(data.get("budget")) and isinstance(data.get("is_adult"), bool)
                        and isinstance(data.get("release_date"), str)):
                    db.execute("INSERT OR REPLACE INTO movies VALUES (?, ?, ?, ?, ?, ?)",
                               (data["original_title"], data["original_language"], data["budget"],
                                int(data["is_adult"]), data["release_date"], normalize(data["original_title"])))
            elif kind == "app":
                rating, size = data.get("rating"), data.get("size_bytes")
                if (isinstance(data.get("name"), str) and isinstance(data.get("genre"), str)
                        and isinstance(rating, (int, float)) and not isinstance(rating, bool)
                        and isinstance(data.get("version"), str) and is_int(size)):
                    db.execute("INSERT OR REPLACE INTO apps VALUES (?, ?, ?, ?, ?, ?)",
                               (data["name"], data["genre"], rating, data["version"], size,
                                int(rating >= 4.5 and size <= 100_000_000)))
        processed.append(key)
    db.commit()
    db.close()
    with open(db_path + ".processed.json", "w") as f:
        json.dump(processed, f)


if __name__ == "__main__":
    main()
