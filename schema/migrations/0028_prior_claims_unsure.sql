-- Issue 15: a copy whose flags were unsure (a flag change sent, its outcome not recorded) when
-- the source's UIDVALIDITY changed keeps that doubt as a prior claim. The adoption that finds it
-- again compares the source's flags with what the destination holds, not with the claim's
-- flags, so a keyword the failed attempt stored does not stay on the destination.
ALTER TABLE mail_prior_claims ADD COLUMN flags_unsure BOOLEAN NOT NULL DEFAULT false;
