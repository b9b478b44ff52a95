-- Profile settings of issue 12 §4 and issue 13 §4.
--   * Avatars: an uploaded avatar is a file under <data>/avatars, named by
--     the SHA-256 of its bytes, and users.profile_image_url holds its path
--     ('/avatars/<hash>.png'). Host users keep the absolute URL their host
--     gives them. The index lets the server tell, when an avatar is
--     replaced or removed, whether anyone else still uses its file.
--   * Local time: time_zone is the IANA zone the user's browser last
--     reported ('' = unknown); show_local_time lets the user hide it.
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN show_local_time INTEGER NOT NULL DEFAULT 1;
CREATE INDEX users_uploaded_avatar ON users (profile_image_url) WHERE profile_image_url LIKE '/avatars/%';
