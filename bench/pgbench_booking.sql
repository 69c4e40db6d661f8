\set sid random(1, :slots)
\set bid random(1, 100000000)
BEGIN;
UPDATE slot SET booked = booked + 1 WHERE id = :sid AND booked < capacity;
INSERT INTO appointment (beneficiary_id, slot_id) VALUES (:bid, :sid);
COMMIT;
