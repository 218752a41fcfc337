-- A message whose text or HTML body was cut to the configured cap (ALGA_GMAIL_MAX_BODY_BYTES), or whose
-- raw form was larger than the part the sync parses (ALGA_GMAIL_MAX_RAW_BYTES), is marked truncated, so a
-- consumer knows the stored bodies are not the whole mail.
ALTER TABLE messages ADD COLUMN truncated boolean NOT NULL DEFAULT false;
