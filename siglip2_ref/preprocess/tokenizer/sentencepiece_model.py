"""Reading the SentencePiece model file (tokenizer.model): the type of every piece, straight from the protobuf."""

PIECE_NORMAL, PIECE_UNKNOWN, PIECE_CONTROL, PIECE_USER_DEFINED, PIECE_BYTE = 1, 2, 3, 4, 6


def piece_types(model_proto):
    """SentencePiece piece types (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte).

    Parses the few protobuf fields needed (ModelProto.pieces[i].type) so protobuf is not a dependency. Pieces
    laid out as SentencePiece writes them (piece, score, type if not normal) take an inlined fast path.
    """
    types, pos, data = [], 0, model_proto
    while pos < len(data):
        key, pos = read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire != 2:
            pos = skip_field(data, pos, wire)
            continue
        size, pos = read_varint(data, pos)
        end = pos + size
        if field == 1:
            types.append(fast_piece_type(data, pos, end) or piece_type(data[pos:end]))
        pos = end
    return types


def fast_piece_type(data, start, end):
    """Type of the SentencePiece message data[start:end] if it reads [piece][score][type < 128]?, else None."""
    if end - start < 7 or data[start] != 0x0A or data[start + 1] >= 0x80:
        return None
    piece_end = start + 2 + data[start + 1]
    if piece_end == end - 5 and data[piece_end] == 0x15:
        return PIECE_NORMAL
    if piece_end == end - 7 and data[piece_end] == 0x15 and data[end - 2] == 0x18 and data[end - 1] < 0x80:
        return data[end - 1] or None
    return None


def piece_type(message):
    """The `type` field (3) of one SentencePiece message; NORMAL when absent."""
    pos, kind = 0, PIECE_NORMAL
    while pos < len(message):
        key, pos = read_varint(message, pos)
        field, wire = key >> 3, key & 7
        if field == 3 and wire == 0:
            kind, pos = read_varint(message, pos)
        elif wire == 2:
            size, pos = read_varint(message, pos)
            pos += size
        else:
            pos = skip_field(message, pos, wire)
    return kind


def read_varint(data, pos):
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def skip_field(data, pos, wire):
    if wire == 0:
        return read_varint(data, pos)[1]
    if wire in (1, 5):
        return pos + (8 if wire == 1 else 4)
    raise ValueError(f"tokenizer.model: unexpected protobuf wire type {wire}")
