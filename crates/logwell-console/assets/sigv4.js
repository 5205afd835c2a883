// SigV4 signing in the browser (WebCrypto), as the AWS SDKs sign: the console's credentials live
// in this tab's sessionStorage only, and every request to this server carries a signature of them.
// WebCrypto exists only in secure contexts (HTTPS, or plain HTTP to localhost).

const enc = new TextEncoder();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (text) => hex(await crypto.subtle.digest("SHA-256", enc.encode(text)));
async function hmac(key, text) {
  const k = await crypto.subtle.importKey("raw", typeof key === "string" ? enc.encode(key) : key,
    { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, enc.encode(text));
}
// RFC 3986: everything but A-Z a-z 0-9 - _ . ~ is %XX.
const uriEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

const KEY = "logwell-credentials";

// The signed-in credentials: { accessKeyId, secretAccessKey, sessionToken, region }, or null.
export function credentials() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}
export function signIn(c) { sessionStorage.setItem(KEY, JSON.stringify(c)); }
export function signOut() { sessionStorage.removeItem(KEY); }
export const canSign = () => Boolean(globalThis.crypto && crypto.subtle);

// `headers` plus X-Amz-Date, Authorization (and X-Amz-Security-Token) for a request to this
// server: `path` and `query` as sent (the query a URLSearchParams), `body` a string.
export async function sign(method, path, query, headers, body, c) {
  const amzDate = new Date().toISOString().replace(/[:-]|\.\d{3}/g, "");
  const day = amzDate.slice(0, 8);
  const all = { host: location.host, "x-amz-date": amzDate };
  for (const [k, v] of Object.entries(headers)) all[k.toLowerCase()] = v;
  if (c.sessionToken) all["x-amz-security-token"] = c.sessionToken;
  const names = Object.keys(all).sort();
  const canonicalHeaders = names.map((n) => `${n}:${String(all[n]).trim().replace(/\s+/g, " ")}\n`).join("");
  const canonicalQuery = [...(query || new URLSearchParams())]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`).join("&");
  const canonicalPath = path.split("/").map(uriEncode).join("/");
  const canonical = [method, canonicalPath, canonicalQuery, canonicalHeaders, names.join(";"), await sha256(body || "")].join("\n");
  const scope = `${day}/${c.region}/logs/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(canonical)].join("\n");
  let key = await hmac(`AWS4${c.secretAccessKey}`, day);
  for (const part of [c.region, "logs", "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  const out = { ...headers, "X-Amz-Date": amzDate,
    Authorization: `AWS4-HMAC-SHA256 Credential=${c.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}` };
  if (c.sessionToken) out["X-Amz-Security-Token"] = c.sessionToken;
  return out;
}
