"""The dtypes Parallax generates, by name, and the groups specs declare against."""

FLOATS: tuple[str, ...] = ("float32", "float16", "float64")
INTS: tuple[str, ...] = ("int32", "int64", "int8")
SIGNED_INTS: tuple[str, ...] = INTS
BOOL = "bool"
NUMERIC: tuple[str, ...] = FLOATS + INTS
ALL: tuple[str, ...] = NUMERIC + (BOOL,)
INDEX = "int64"


def is_float(dtype: str) -> bool:
    return dtype in FLOATS


def is_int(dtype: str) -> bool:
    return dtype in INTS
