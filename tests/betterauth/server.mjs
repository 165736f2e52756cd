// A real Better Auth server for the end-to-end tests: it mints the JWTs the
// Tasks API has to verify. Started by tests/better_auth.py; configured by env.
import http from "node:http";
import process from "node:process";
import pg from "pg";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins/jwt";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set`);
  return value;
}

function optionalSeconds(name) {
  const value = process.env[name];
  if (value === undefined || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer`);
  return n;
}

// pgserver hands out socket URLs such as postgresql://postgres:@/postgres?host=/dir.
// WHATWG URL rejects credentials without a host, so give it a placeholder and
// let ?host= (a socket directory) override it.
function poolConfig(databaseUrl) {
  const url = new URL(databaseUrl.replace(/@\//, "@localhost/"));
  return {
    host: url.searchParams.get("host") ?? url.hostname,
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    database: decodeURIComponent(url.pathname.slice(1)) || undefined,
    max: 5,
  };
}

const port = Number(required("BA_PORT"));
const baseURL = `http://127.0.0.1:${port}`;
const alg = process.env.BA_JWT_ALG || "EdDSA";

const options = {
  baseURL,
  secret: required("BA_SECRET"),
  database: new pg.Pool(poolConfig(required("BA_DATABASE_URL"))),
  emailAndPassword: { enabled: true },
  // Tests sign in many times in a few seconds; the production limiter would 429.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins: [
    jwt({
      jwks: {
        keyPairConfig: { alg },
        rotationInterval: optionalSeconds("BA_ROTATION_INTERVAL"),
        gracePeriod: optionalSeconds("BA_GRACE_PERIOD"),
      },
    }),
  ],
};

// Same migration runner as the `auth migrate` CLI, without installing the CLI.
await (await getMigrations(options)).runMigrations();

const auth = betterAuth(options);
const server = http.createServer(toNodeHandler(auth));
server.listen(port, "127.0.0.1", () => {
  console.log(`READY ${baseURL}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    options.database.end().finally(() => process.exit(0));
  });
}
