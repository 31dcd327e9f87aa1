// The JSON body of a request to one of the SDK servers written for the
// tests (undefined when empty), as the SDK's own examples read it.
export function readBody(req) {
  return new Promise((resolve, reject) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => { text += chunk; });
    req.on("end", () => {
      try { resolve(text ? JSON.parse(text) : undefined); } catch (err) { reject(err); }
    });
    req.on("error", reject);
  });
}
