-- Crypto-shred: without this row no ciphertext of the tenant can be opened again.
DELETE FROM secrets.data_keys WHERE tenant = $1
