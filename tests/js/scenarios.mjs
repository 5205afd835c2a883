// The AWS SDK for JavaScript v3 against a logwell server: runs the usual scenarios with the
// credentials it is given and prints what it saw as one JSON object, which tests/test_js_sdk.py
// checks. Usage: node scenarios.mjs <endpoint> <access key id> <secret> [<session token>]
import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DeleteLogGroupCommand,
  DescribeLogGroupsCommand,
  FilterLogEventsCommand,
  GetLogEventsCommand,
  GetQueryResultsCommand,
  PutLogEventsCommand,
  StartLiveTailCommand,
  StartQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";

const [endpoint, accessKeyId, secretAccessKey, sessionToken] = process.argv.slice(2);
const group = "/js/app";

function client({ credentials = {}, ...overrides } = {}) {
  return new CloudWatchLogsClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId, secretAccessKey, sessionToken, ...credentials },
    maxAttempts: 1,
    // Live tail's endpoint prefix ("streaming-") is for AWS's own host names.
    disableHostPrefix: true,
    ...overrides,
  });
}

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const seen = {};
const logs = client();

await logs.send(new CreateLogGroupCommand({ logGroupName: group }));
await logs.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: "s" }));
const now = Date.now();
const put = await logs.send(new PutLogEventsCommand({
  logGroupName: group,
  logStreamName: "s",
  logEvents: [
    { timestamp: now - 2, message: '{"level":"INFO","ms":12}' },
    { timestamp: now - 1, message: '{"level":"ERROR","ms":340}' },
    { timestamp: now, message: "plain text line" },
  ],
}));
seen.rejected = put.rejectedLogEventsInfo ?? null;
seen.groups = (await logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: "/js/" })))
  .logGroups.map((g) => g.logGroupName);
seen.get = (await logs.send(new GetLogEventsCommand({ logGroupName: group, logStreamName: "s", startFromHead: true })))
  .events.map((e) => e.message);
seen.filter = (await logs.send(new FilterLogEventsCommand({ logGroupName: group, filterPattern: "{ $.level = \"ERROR\" }" })))
  .events.map((e) => e.message);

const { queryId } = await logs.send(new StartQueryCommand({
  logGroupName: group,
  startTime: Math.floor(now / 1000) - 60,
  endTime: Math.floor(now / 1000) + 60,
  queryString: "filter ispresent(ms) | stats sum(ms) as total, count(*) as n",
}));
for (let i = 0; i < 100; i++) {
  const r = await logs.send(new GetQueryResultsCommand({ queryId }));
  if (r.status === "Complete") {
    seen.query = r.results.map((row) => Object.fromEntries(row.map((f) => [f.field, f.value])));
    break;
  }
  await sleep(100);
}

// Live tail: the session's start, then an event put while it runs.
const tail = await logs.send(new StartLiveTailCommand({ logGroupIdentifiers: [group] }));
seen.tail = [];
const reader = (async () => {
  for await (const frame of tail.responseStream) {
    if (frame.sessionStart) seen.tail.push("start");
    if (frame.sessionUpdate) {
      for (const e of frame.sessionUpdate.sessionResults) seen.tail.push(e.message);
      if (seen.tail.includes("tailed line")) return;
    }
  }
})();
await sleep(500);
await logs.send(new PutLogEventsCommand({
  logGroupName: group, logStreamName: "s", logEvents: [{ timestamp: Date.now(), message: "tailed line" }],
}));
await Promise.race([reader, sleep(10000)]);

// Refusals: a wrong secret, a body changed after signing, a clock 20 minutes slow.
seen.wrongSecret = await errorOf(client({ credentials: { secretAccessKey: "wrong-secret" } })
  .send(new DescribeLogGroupsCommand({})));
const tampered = client();
tampered.middlewareStack.add((next) => async (args) => {
  // The deserialize step runs after signing: this is a replay with another payload.
  const body = typeof args.request.body === "string" ? args.request.body : new TextDecoder().decode(args.request.body);
  args.request.body = body.replace(group, "/js/xxx");
  return next(args);
}, { step: "deserialize", name: "tamper" });
seen.tampered = await errorOf(tampered.send(new DeleteLogGroupCommand({ logGroupName: group })));
seen.skewed = await errorOf(client({ systemClockOffset: -20 * 60 * 1000 }).send(new DescribeLogGroupsCommand({})));
seen.missing = await errorOf(logs.send(new GetLogEventsCommand({ logGroupName: "/js/none", logStreamName: "s" })));

await logs.send(new DeleteLogGroupCommand({ logGroupName: group }));
seen.afterDelete = (await logs.send(new DescribeLogGroupsCommand({ logGroupNamePrefix: "/js/" })))
  .logGroups.map((g) => g.logGroupName);
console.log(JSON.stringify(seen));
process.exit(0);
