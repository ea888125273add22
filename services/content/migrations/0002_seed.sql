-- Seed data so a fresh installation can be tried at once (README: "Try it").
INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob'), (3, 'carol'), (4, 'dave');
INSERT INTO categories (id, name) VALUES (1, 'General'), (2, 'Tech'), (3, 'Sports'), (4, 'Music'), (5, 'Travel');
INSERT INTO follows (follower_id, followee_id) VALUES (2, 1), (3, 1), (4, 1), (1, 2), (3, 2);
