-- Which KEK ids wrap data keys, and how many each (startup check, rotation progress).
SELECT kek_id, count(*) FROM secrets.data_keys GROUP BY kek_id ORDER BY kek_id
