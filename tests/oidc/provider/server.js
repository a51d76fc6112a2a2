// A real OpenID Connect provider for the tests: the certified `oidc-provider` package, on loopback.
//
// Started by tests/oidc/provider.py with one argument, the path of a JSON configuration:
//   { "issuer", "port", "audience", "other_audience", "access_token_ttl_s",
//     "services": [{ "client_id", "client_secret" }],          client credentials only
//     "people_client": { "client_id", "redirect_uri" },         code + PKCE, public (the tests)
//     "portal_client": { "client_id", "client_secret", "redirect_uri", "post_logout_redirect_uri" },
//     "short_client": { "client_id", "client_secret", "ttl_s" }, client credentials: short-lived
//                     tokens for the audience, ordinary ones for "other_audience"
//     "accounts": { "<sub>": { "roles": [...], "email"?, "organisatie"? } } }
// Prints one line "listening <issuer>" when it accepts requests.
//
// Access tokens are JWTs (RFC 9068) for a resource indicator (RFC 8707): the audience is the
// services' API. A person's token carries the account's `roles`, `email` and `organisatie`; a
// service's (client credentials) only what oidc-provider puts in every token (sub = client_id).
// People sign in through the development interactions (any account id, no password): this is a
// test provider, never a deployment's. Signing out asks the person to confirm unless the client
// sent the ID token of that person's sign-in as `id_token_hint` (see `logoutSource`).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider, { errors } from 'oidc-provider';
import { defaults } from 'oidc-provider/lib/helpers/defaults.js';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

// A fresh signing key per start: a token of another provider never verifies here.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig',
};

const clientCredentialsClient = ({ client_id: clientId, client_secret: clientSecret }) => ({
  client_id: clientId,
  client_secret: clientSecret,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
});

const clients = [
  ...config.services.map(clientCredentialsClient),
  clientCredentialsClient(config.short_client),
  {
    client_id: config.people_client.client_id,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [config.people_client.redirect_uri],
  },
  {
    client_id: config.portal_client.client_id,
    client_secret: config.portal_client.client_secret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [config.portal_client.redirect_uri],
    post_logout_redirect_uris: [config.portal_client.post_logout_redirect_uri],
  },
];

const personClaims = (account) => {
  const claims = { roles: account.roles };
  if (account.email) claims.email = account.email;
  if (account.organisatie) claims.organisatie = account.organisatie;
  return claims;
};

// RP-Initiated Logout. Left to itself oidc-provider asks everyone with a session here to confirm
// a sign-out, hint or not. Like providers that skip the question when the request shows whose
// session ends (Keycloak does), this one asks only without a valid `id_token_hint` naming the
// session's account: with one, the page posts its own "yes" at once (as oidc-provider does for
// a browser without a session). The hint has been validated (signature, issuer, audience = the
// client) before this page is made; an invalid one never gets here.
const logoutSource = async (ctx, form) => {
  const hint = ctx.oidc.entities.IdTokenHint;
  if (!hint || hint.payload.sub !== ctx.oidc.session.accountId) {
    await defaults.features.rpInitiatedLogout.logoutSource(ctx, form);
    return;
  }
  const yes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  ctx.body = `<!DOCTYPE html>
<html>
<head><title>Signing out</title></head>
<body>
  ${yes}
  <noscript><button type="submit" form="op.logoutForm">Continue</button></noscript>
  <script>document.forms[0].submit()</script>
</body>
</html>`;
};

const provider = new Provider(config.issuer, {
  clients,
  jwks: { keys: [signingKey] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'email', 'weerbaar'],
  claims: { openid: ['sub'], email: ['email'], weerbaar: ['roles', 'organisatie'] },
  findAccount: (ctx, id) => {
    const account = config.accounts[id];
    if (!account) return undefined;
    return { accountId: id, claims: () => ({ sub: id, ...personClaims(account) }) };
  },
  extraTokenClaims: async (ctx, token) => {
    if (!token.accountId) return undefined; // a service's token: nothing but the standard claims
    const account = config.accounts[token.accountId];
    return account ? personClaims(account) : undefined;
  },
  ttl: {
    // Access tokens (people's and services') live as getResourceServerInfo says (the default).
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        const known = [config.audience];
        // Another API's audience, for the short-lived client only: what a token for another
        // audience looks like.
        if (client.clientId === config.short_client.client_id) known.push(config.other_audience);
        if (!known.includes(resourceIndicator)) throw new errors.InvalidTarget();
        // Short-lived only for the services' audience: the other audience's token must still be
        // valid when it arrives, or it would be refused as expired, not for its audience.
        const short = client.clientId === config.short_client.client_id
          && resourceIndicator === config.audience;
        return {
          scope: 'weerbaar',
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: short ? config.short_client.ttl_s : config.access_token_ttl_s,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});

provider.on('server_error', (ctx, error) => {
  console.error('server_error', error);
});

// Every token the provider hands out, by client: what the tests read to see that each service
// got its own tokens (GET /test/issued).
const issued = {};
provider.on('grant.success', (ctx) => {
  const clientId = ctx.oidc.client?.clientId;
  if (clientId) issued[clientId] = (issued[clientId] || 0) + 1;
});

const app = provider.callback();
const server = (await import('node:http')).createServer((req, res) => {
  if (req.url === '/test/issued') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(issued));
    return;
  }
  app(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${config.issuer}`);
});
