#!/usr/bin/env node
// An independent Modbus TCP server (modbus-serial's ServerTCP) for plantpulse's integration tests.
//
// Usage: node modbus_server.js PORT
// Answers unit id 1 only (requests to other units get no reply) with holding registers:
//   0-1  uint32 counter, big word order (high word at 0): COUNTER_START + n, where n counts the
//        earlier reads that covered address 0, so every read sees the next value
//   2-3  float32 FLOAT_VALUE, little word order (CDAB: low word at 2, high word at 3)
//   4    uint16 4242
//   5-6  int32 INT32_VALUE in BADC order (the bytes of each register swapped)
//   7-10 float64 FLOAT64_VALUE in DCBA order (little-endian: least significant byte first)
//   11   int16 -2
//   12   status bits 0b1010: bits 1 and 3 set
// Any holding address from HOLDING_SIZE on is refused with exception 02 (illegal data address).
// Input registers 0-1: float32 INPUT_FLOAT in ABCD order. Coils 0-7: on where COILS has a 1.
// Discrete inputs 0-7: on where DISCRETE has a 1. Anything beyond is refused, and so is any write.
// Prints "READY 127.0.0.1:PORT" on stdout once listening; exits on SIGTERM, SIGINT or stdin closing.
"use strict";

const ModbusRTU = require("modbus-serial");

const UNIT_ID = 1;
const HOLDING_SIZE = 13;
const COUNTER_START = 0x12345678; // 305419896: both words non-zero and distinct
const FLOAT_VALUE = 230.41; // stored as the nearest float32
const UINT16_VALUE = 4242;
const INT32_VALUE = -123456;
const FLOAT64_VALUE = -1234.5678;
const INT16_VALUE = -2;
const STATUS_BITS = 0b1010;
const INPUT_FLOAT = 21.5;
const COILS = [1, 0, 0, 1, 0, 0, 1, 0];
const DISCRETE = [0, 1, 1, 0, 0, 0, 0, 1];

let counterReads = 0;

function illegalAddress(address) {
    const err = new Error(`illegal data address ${address}`);
    err.modbusErrorCode = 0x02;
    return err;
}

function floatWords(value) {
    const buf = Buffer.alloc(4);
    buf.writeFloatBE(value, 0);
    return [buf.readUInt16BE(0), buf.readUInt16BE(2)]; // [high, low]
}

// BADC: each register's two bytes swapped, registers in big-endian order.
function int32BadcWords(value) {
    const buf = Buffer.alloc(4);
    buf.writeInt32BE(value, 0);
    return [buf.readUInt16LE(0), buf.readUInt16LE(2)];
}

// DCBA: the whole value little-endian, read as big-endian registers in address order.
function float64DcbaWords(value) {
    const buf = Buffer.alloc(8);
    buf.writeDoubleLE(value, 0);
    return [0, 2, 4, 6].map((at) => buf.readUInt16BE(at));
}

// One consistent snapshot of the table per request, so a read never mixes two counter values.
function snapshot(coversCounter) {
    const counter = (COUNTER_START + counterReads) >>> 0;
    if (coversCounter) {
        counterReads += 1;
    }
    const [floatHigh, floatLow] = floatWords(FLOAT_VALUE);
    return [
        (counter >>> 16) & 0xffff,
        counter & 0xffff,
        floatLow,
        floatHigh,
        UINT16_VALUE,
        ...int32BadcWords(INT32_VALUE),
        ...float64DcbaWords(FLOAT64_VALUE),
        INT16_VALUE & 0xffff,
        STATUS_BITS,
    ];
}

function readBlock(address, length) {
    if (address + length > HOLDING_SIZE) {
        throw illegalAddress(address + length - 1);
    }
    const covers = address <= 0 && address + length > 0;
    return snapshot(covers).slice(address, address + length);
}

function bitOf(bits, address, callback) {
    if (address >= bits.length) {
        callback(illegalAddress(address));
    } else {
        callback(null, bits[address] === 1);
    }
}

const vector = {
    getMultipleHoldingRegisters(address, length, unitID, callback) {
        try {
            callback(null, readBlock(address, length));
        } catch (err) {
            callback(err);
        }
    },
    getHoldingRegister(address, unitID, callback) {
        try {
            callback(null, readBlock(address, 1)[0]);
        } catch (err) {
            callback(err);
        }
    },
    getInputRegister(address, unitID, callback) {
        const words = floatWords(INPUT_FLOAT);
        if (address >= words.length) {
            callback(illegalAddress(address));
        } else {
            callback(null, words[address]);
        }
    },
    getCoil(address, unitID, callback) {
        bitOf(COILS, address, callback);
    },
    getDiscreteInput(address, unitID, callback) {
        bitOf(DISCRETE, address, callback);
    },
    setRegister(address, value, unitID, callback) {
        callback(illegalAddress(address));
    },
    setCoil(address, value, unitID, callback) {
        callback(illegalAddress(address));
    },
};

function main() {
    const port = Number.parseInt(process.argv[2], 10);
    if (!Number.isInteger(port) || port <= 0 || port > 65535) {
        console.error("usage: node modbus_server.js PORT");
        process.exit(2);
    }
    const server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port, unitID: UNIT_ID });
    server.on("serverError", (err) => {
        console.error(`modbus_server: ${err && err.stack ? err.stack : err}`);
        process.exit(1);
    });
    server.on("socketError", (err) => {
        console.error(`modbus_server: socket error: ${err}`);
    });
    server.on("initialized", () => {
        process.stdout.write(`READY 127.0.0.1:${port}\n`);
    });

    let stopping = false;
    const stop = () => {
        if (stopping) {
            return;
        }
        stopping = true;
        const force = setTimeout(() => process.exit(0), 3000);
        force.unref();
        server.close(() => process.exit(0));
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    process.stdin.on("end", stop);
    process.stdin.on("error", stop);
    process.stdin.resume();
}

main();
