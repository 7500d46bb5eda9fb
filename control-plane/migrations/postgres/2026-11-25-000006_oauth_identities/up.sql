-- Sign in with Google, GitHub or Apple (issue 7). What a provider tells us about an
-- account, as DESIGN §1 allows: its stable subject id and the verified email it had when
-- it was linked. Never an access token, refresh token, id_token or authorization code.

-- An identity at a provider, linked to one account. (provider, subject) is what signs in;
-- the email is kept only to show the user which of their provider accounts this is.
CREATE TABLE oauth_identities (
    id TEXT PRIMARY KEY NOT NULL,
    -- google | github | apple
    provider TEXT NOT NULL,
    -- the provider's stable user id (OIDC `sub`, GitHub's numeric user id)
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    UNIQUE (provider, subject)
);
CREATE INDEX oauth_identities_user ON oauth_identities (user_id);

-- A sign-in in progress, between the redirect to the provider and its callback: at most
-- 10 minutes, deleted when the callback uses it (single use). Kept in the database, not in
-- process memory, so the callback may land on another replica, and so Apple's cross-site
-- form_post callback can be checked without relying on a SameSite=Lax cookie.
-- The state value itself and the browser-binding cookie are stored as SHA-256 only.
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY NOT NULL,
    provider TEXT NOT NULL,
    binding_hash TEXT NOT NULL,
    nonce TEXT NOT NULL,
    -- PKCE verifier: needed once at the token exchange, gone with the row
    pkce_verifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);
