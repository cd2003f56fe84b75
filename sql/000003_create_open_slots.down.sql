DROP TABLE open_slots;
