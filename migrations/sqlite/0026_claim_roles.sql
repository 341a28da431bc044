-- Roles an OpenID Connect provider's claims give (`[auth.oidc] roles`) are taken away again
-- when the claim no longer gives them at a later sign-in; roles an admin granted never are.
-- 1: this membership was given by a claim rule at sign-in (an admin's grant sets it back to 0).
ALTER TABLE memberships ADD COLUMN from_claim INTEGER NOT NULL DEFAULT 0;
-- 1: this principal is an admin because a claim rule said so at sign-in.
ALTER TABLE principals ADD COLUMN admin_from_claim INTEGER NOT NULL DEFAULT 0;
