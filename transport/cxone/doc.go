// Package cxone connects dtmfd to the real NICE CXone platform: it finds
// the platform's endpoints, signs in with an API user's access key, writes
// decisions back to a running Studio script with the Signal API, and serves
// the two ways a script hands caller keys to an outside service: a Studio
// REST API action and a Virtual Agent Hub custom exchange endpoint.
//
// # Endpoints and sign-in
//
// Discovery reads the token endpoint from the issuer's OpenID configuration
// (GET {issuer}/.well-known/openid-configuration, field token_endpoint) and
// the tenant's API host from GET
// {issuer}/.well-known/cxone-configuration?tenantId=..., field api_endpoint.
// The issuer is https://cxone.niceincontact.com unless configured.
//
// Source signs in with the OAuth 2.0 password grant: the access key id and
// secret of an API user go in the form as username and password, and the
// registered application's client id and secret go in HTTP Basic auth,
// each form-encoded first as RFC 6749 section 2.3.1 asks. The reply carries
// an access token, a refresh token and an OpenID id_token; the tenant id is
// read from the id_token's tenantId claim. The id_token's signature is not
// checked: it came over TLS straight from the token endpoint, and the
// tenant id only picks which API host to call, where the access token is
// checked for real.
//
// # Writing decisions
//
// Signal implements actors.Sink. A decision becomes
// POST {api_endpoint}/inContactAPI/services/v30.0/interactions/{contactId}/signal?p1=..&p9=..
// with the decision's variables placed by a configured list of names; the
// script's Onsignal event receives them as SP1..SPn, in that order.
// Failures are classified by variables.Decide, so 429, 5xx and 401 behave
// as they do for every other sink. An API endpoint that cannot be reached
// or answers 404 is dropped, so the next attempt discovers it again.
//
// # Taking keys
//
// Studio serves a JSON endpoint for a Studio REST API action: the script
// collects keys with its own Capture action and posts them; the reply says
// whether to collect again (with the next prompt and collect rules) or to
// end. VAH serves NICE's ExternalIntegrationBotExchangeRequest and answers
// with a BotExchangeResponse, for scripts that use a Virtual Agent Hub
// custom exchange endpoint with DTMF sent as text. Both run each turn
// through Engine.Step, so the call's state lives in its actor.
//
// The platform hands back what the last reply told it: a session (the
// process that answered) and the node the call waits at. Every turn asks
// the engine, which in a cluster reaches the call wherever it lives, so a
// turn another replica answered last goes on. Only a call no process
// holds is started again: at the named node, when the current flow has
// it, since the keys answer that node's prompt; otherwise from the top,
// with the keys applied nowhere. Keys that answer another node than the
// one the call waits at are not applied either; the reply names the
// call's node.
//
// # Sources
//
// The field names follow NICE's public material:
//
//   - Virtual Agent Hub schemas:
//     https://help.nice-incontact.com/content/aiassistantsandbots/customaiintegrations/vah/schemas.htm
//     and NICE's published swagger for the exchange endpoint,
//     https://github.com/nice-devone/virtualagenthub-integration-guide
//     (swagger-specs/virtualagenthub-integration-swagger.json), from which
//     the names of CollectDtmfRules and SilenceRules are taken.
//   - Studio REST API action (JSON replies only, 90 s timeout, 32 KB
//     replies, retried by the platform on failure):
//     https://help.nice-incontact.com/content/studio/actionscx/rest_api/rest_api.htm
//   - Signal and Onsignal (up to nine parameters):
//     https://help.nice-incontact.com/Content/studio/actionscx/signal/signal.htm
//     https://help.nice-incontact.com/content/studio/actionscx/onsignal/onsignal.htm
//   - Data Extraction API page on access keys:
//     https://developer.niceincontact.com/API/DataExtractionAPI
//
// The password grant's exact form, the tenantId claim, the api_endpoint
// field and the Signal path were checked against public client code that
// calls the platform, not against a NICE reference page. Assumed and not
// yet seen on a live tenant: that the token endpoint decodes form-encoded
// Basic credentials (RFC 6749 section 2.3.1), that the refresh_token grant
// renews a password grant's token, that the Signal API answers 2xx and
// takes empty values, and that Virtual Agent Hub hands botSessionState
// back unchanged.
package cxone
