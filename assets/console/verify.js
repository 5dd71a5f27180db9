// Verifies a DSSE envelope's Ed25519 signature in the browser (WebCrypto), against the
// public key the reader pasted. Nothing is sent anywhere: the verdict is the browser's.
"use strict";

function bytesOfBase64(text) {
  const clean = text.replace(/-/g, "+").replace(/_/g, "/").replace(/\s+/g, "");
  const raw = atob(clean);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

// DSSE v1 pre-authentication encoding: "DSSEv1 LEN(type) type LEN(body) body".
function pae(type, body) {
  const enc = new TextEncoder();
  const typeBytes = enc.encode(type);
  const head = enc.encode(`DSSEv1 ${typeBytes.length} `);
  const mid = enc.encode(` ${body.length} `);
  const out = new Uint8Array(head.length + typeBytes.length + mid.length + body.length);
  let at = 0;
  for (const part of [head, typeBytes, mid, body]) { out.set(part, at); at += part.length; }
  return out;
}

async function importKey(pem) {
  const body = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "");
  return crypto.subtle.importKey("spki", bytesOfBase64(body), { name: "Ed25519" }, false, ["verify"]);
}

async function verify(envelopeText, pem) {
  const envelope = JSON.parse(envelopeText);
  if (typeof envelope.payload !== "string" || typeof envelope.payloadType !== "string" || !Array.isArray(envelope.signatures)) {
    throw new Error("not a DSSE envelope");
  }
  const key = await importKey(pem);
  const message = pae(envelope.payloadType, bytesOfBase64(envelope.payload));
  for (const s of envelope.signatures) {
    if (await crypto.subtle.verify({ name: "Ed25519" }, key, bytesOfBase64(s.sig), message)) return true;
  }
  return false;
}

document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("verify");
  const verdict = document.getElementById("verdict");
  if (!button || !window.crypto || !crypto.subtle) return;
  button.disabled = false;
  verdict.textContent = "Paste a public key, then verify.";
  button.addEventListener("click", async () => {
    verdict.className = "";
    try {
      const valid = await verify(document.getElementById("envelope").value, document.getElementById("public-key").value);
      verdict.textContent = valid
        ? "Valid: the signature verifies under this public key."
        : "Invalid: no signature verifies under this public key (the envelope was changed, or the key is not the signer's).";
      verdict.className = valid ? "valid" : "invalid";
    } catch (e) {
      verdict.textContent = `Invalid: ${e.message}`;
      verdict.className = "invalid";
    }
  });
});
