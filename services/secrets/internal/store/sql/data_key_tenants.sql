-- Every tenant with a data key, for rotation.
SELECT tenant FROM secrets.data_keys ORDER BY tenant
