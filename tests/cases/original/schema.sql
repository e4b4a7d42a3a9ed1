-- The Python original's database: the three data tables with the natural-key
-- primary keys it used, no source_key, no bookkeeping tables, and a few rows.
CREATE TABLE songs (
  artist_name TEXT NOT NULL,
  title TEXT NOT NULL,
  year INTEGER NOT NULL,
  release TEXT NOT NULL,
  ingestion_time TEXT NOT NULL,
  PRIMARY KEY (artist_name, title)
);
CREATE TABLE movies (
  original_title TEXT NOT NULL,
  original_language TEXT NOT NULL,
  budget INTEGER NOT NULL,
  is_adult INTEGER NOT NULL,
  release_date TEXT NOT NULL,
  original_title_normalized TEXT NOT NULL,
  PRIMARY KEY (original_title_normalized, release_date)
);
CREATE TABLE apps (
  name TEXT NOT NULL,
  genre TEXT NOT NULL,
  rating REAL NOT NULL,
  version TEXT NOT NULL,
  size_bytes INTEGER NOT NULL,
  is_awesome INTEGER NOT NULL,
  PRIMARY KEY (name, version)
);
INSERT INTO songs VALUES ('The Primeridian', 'Wisdom (Reprise)', 2005, 'Da Allnighta', '2021-05-01 10:00:00');
INSERT INTO songs VALUES ('Original Artist', 'Unknown Year', 0, 'Some Release', '2021-05-01 10:00:00');
INSERT INTO movies VALUES ('Un Français', 'fr', 0, 0, '2015-06-10', 'un_français');
INSERT INTO apps VALUES ('Tomb Raider II', 'Games', 4.0, '1.0.3', 310942720, 0);
