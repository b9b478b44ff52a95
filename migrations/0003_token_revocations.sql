-- A running server polls for tokens revoked since its last look (every
-- 500 ms), so that revoking a token from another process (`presence user
-- revoke-token`) also ends the WebSockets and event streams it opened.
-- Only revoked tokens are indexed: the poll stays a short index range scan
-- however many live tokens there are.
CREATE INDEX tokens_revoked ON tokens (revoked_at) WHERE revoked_at IS NOT NULL;
