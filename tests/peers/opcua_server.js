#!/usr/bin/env node
// An independent OPC UA server (node-opcua) for plantpulse's integration tests.
//
// Usage: node opcua_server.js PORT [PKI_DIR] [MAX_NODES_PER_READ]
// Serves, in the server's own namespace (ns=1), Double variables with string node ids:
//   peer.temperature   21.5, Good
//   peer.pressure-diff 15.25, Good
//   peer.energy        a counter: 1000 + 1.5 * k, stepped every 250 ms, Good, fresh source timestamp
//   peer.humidity      52, BadSensorFailure
//   peer.particles     60000, UncertainLastUsableValue
// Prints "READY <endpoint>" on stdout once listening; exits on SIGTERM, SIGINT or stdin closing.
"use strict";

const os = require("os");
const path = require("path");
const {
    OPCUAServer,
    OPCUACertificateManager,
    DataType,
    StatusCodes,
    Variant,
    nodesets,
} = require("node-opcua");

const RESOURCE_PATH = "/plantpulse-peer";
const COUNTER_START = 1000.0;
const COUNTER_STEP = 1.5;
const COUNTER_PERIOD_MS = 250;

async function main() {
    const port = Number.parseInt(process.argv[2], 10);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        console.error("usage: node opcua_server.js PORT [PKI_DIR]");
        process.exit(2);
    }
    const pkiDir = process.argv[3] || path.join(os.tmpdir(), `plantpulse-opcua-peer-${port}`);
    // A small MaxNodesPerRead makes the server refuse larger Read calls (BadTooManyOperations).
    const maxNodesPerRead = Number.parseInt(process.argv[4] || "0", 10);
    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pkiDir, "server"),
        automaticallyAcceptUnknownCertificate: true,
    });
    const userCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pkiDir, "user"),
        automaticallyAcceptUnknownCertificate: true,
    });

    const server = new OPCUAServer({
        port,
        resourcePath: RESOURCE_PATH,
        nodeset_filename: [nodesets.standard],
        serverCertificateManager,
        userCertificateManager,
        allowAnonymous: true,
        buildInfo: { productName: "plantpulse-test-peer", buildNumber: "1" },
        serverCapabilities:
            maxNodesPerRead > 0 ? { operationLimits: { maxNodesPerRead } } : undefined,
    });
    await server.initialize();

    const addressSpace = server.engine.addressSpace;
    const ns = addressSpace.getOwnNamespace();
    const device = ns.addObject({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: "PlantPulsePeer",
    });
    const addDouble = (name, value, statusCode) => {
        const variable = ns.addVariable({
            componentOf: device,
            nodeId: `s=peer.${name}`,
            browseName: name,
            dataType: "Double",
            minimumSamplingInterval: 100,
        });
        variable.setValueFromSource(
            new Variant({ dataType: DataType.Double, value }),
            statusCode,
            new Date(),
        );
        return variable;
    };

    addDouble("temperature", 21.5, StatusCodes.Good);
    addDouble("pressure-diff", 15.25, StatusCodes.Good);
    addDouble("humidity", 52.0, StatusCodes.BadSensorFailure);
    addDouble("particles", 60000.0, StatusCodes.UncertainLastUsableValue);
    const energy = addDouble("energy", COUNTER_START, StatusCodes.Good);

    let step = 0;
    const timer = setInterval(() => {
        step += 1;
        energy.setValueFromSource(
            new Variant({ dataType: DataType.Double, value: COUNTER_START + COUNTER_STEP * step }),
            StatusCodes.Good,
            new Date(),
        );
    }, COUNTER_PERIOD_MS);

    await server.start();
    const endpoint = `opc.tcp://127.0.0.1:${port}${RESOURCE_PATH}`;
    process.stdout.write(`READY ${endpoint}\n`);

    let stopping = false;
    const stop = async () => {
        if (stopping) {
            return;
        }
        stopping = true;
        clearInterval(timer);
        const force = setTimeout(() => process.exit(0), 5000);
        force.unref();
        try {
            await server.shutdown(0);
        } finally {
            process.exit(0);
        }
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    process.stdin.on("end", stop);
    process.stdin.on("error", stop);
    process.stdin.resume();
}

main().catch((err) => {
    console.error(`opcua_server: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
});
