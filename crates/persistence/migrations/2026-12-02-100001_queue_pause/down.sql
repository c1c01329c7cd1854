DROP TABLE queue_pause;
