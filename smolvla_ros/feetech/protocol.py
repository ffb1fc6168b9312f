"""Feetech protocol 0 (STS/SMS series) as the STS3215 speaks it.

Addresses and sizes follow LeRobot's ``motors/feetech/tables.py``; the packet layout is the
SDK's (``FF FF ID LEN INSTR params CHK``). Shared by the driver and the emulator so both
sides of every test agree on one table.
"""

from __future__ import annotations

STS3215_MODEL_NUMBER = 777
BAUD_RATE = 1_000_000
BROADCAST_ID = 0xFE

# Instructions
PING, READ, WRITE, REG_WRITE, ACTION, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x82, 0x83

# Status error bits
ERROR_BITS = {0x01: "voltage", 0x02: "angle", 0x04: "overheat", 0x08: "over-current",
              0x20: "overload"}

# name: (address, size). Below 40: EEPROM; 40 and up: RAM.
CONTROL_TABLE = {
    "Model_Number": (3, 2),
    "ID": (5, 1),
    "Baud_Rate": (6, 1),
    "Return_Delay_Time": (7, 1),
    "Min_Position_Limit": (9, 2),
    "Max_Position_Limit": (11, 2),
    "Max_Torque_Limit": (16, 2),
    "Phase": (18, 1),
    "P_Coefficient": (21, 1),
    "D_Coefficient": (22, 1),
    "I_Coefficient": (23, 1),
    "Protection_Current": (28, 2),
    "Homing_Offset": (31, 2),
    "Operating_Mode": (33, 1),
    "Overload_Torque": (36, 1),
    "Torque_Enable": (40, 1),
    "Acceleration": (41, 1),
    "Goal_Position": (42, 2),
    "Goal_Time": (44, 2),
    "Goal_Velocity": (46, 2),
    "Torque_Limit": (48, 2),
    "Lock": (55, 1),
    "Present_Position": (56, 2),
    "Present_Velocity": (58, 2),
    "Present_Load": (60, 2),
    "Present_Voltage": (62, 1),
    "Present_Temperature": (63, 1),
    "Status": (65, 1),
    "Moving": (66, 1),
    "Present_Current": (69, 2),
    "Maximum_Acceleration": (85, 1),
}

# Registers stored sign-magnitude, and the bit that holds their sign.
SIGN_BITS = {"Homing_Offset": 11, "Goal_Position": 15, "Goal_Velocity": 15,
             "Present_Position": 15, "Present_Velocity": 15, "Present_Load": 10}


def address(name: str) -> int:
    return CONTROL_TABLE[name][0]


def size(name: str) -> int:
    return CONTROL_TABLE[name][1]


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    magnitude = abs(value)
    if magnitude >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit in {sign_bit} bits plus sign")
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


def encode(name: str, value: int) -> int:
    """A register value as stored on the servo (sign-magnitude where the STS3215 uses it)."""
    return encode_sign_magnitude(value, SIGN_BITS[name]) if name in SIGN_BITS else value


def decode(name: str, raw: int) -> int:
    return decode_sign_magnitude(raw, SIGN_BITS[name]) if name in SIGN_BITS else raw


def checksum(body: bytes | list[int]) -> int:
    """``~(ID + LEN + INSTR/ERR + params) & 0xFF`` over everything after the FF FF header."""
    return ~sum(body) & 0xFF


def packet(servo_id: int, code: int, params: bytes | list[int] = b"") -> bytes:
    """An instruction (code = instruction) or status (code = error byte) packet."""
    body = bytes([servo_id, len(params) + 2, code, *params])
    return b"\xff\xff" + body + bytes([checksum(body)])


def error_text(error: int) -> str:
    return ", ".join(name for bit, name in ERROR_BITS.items() if error & bit) or "none"
