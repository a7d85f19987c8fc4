ALTER TABLE agents ADD COLUMN queue_id INTEGER REFERENCES queues (id);
UPDATE agents SET queue_id = (SELECT id FROM queues WHERE name = 'default');
