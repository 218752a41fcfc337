DELETE FROM secrets.secrets WHERE tenant = $1
