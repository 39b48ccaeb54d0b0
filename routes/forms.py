"""Form bodies: every form posts application/x-www-form-urlencoded."""

from typing import Annotated, Any

from litestar.enums import RequestEncodingType
from litestar.params import Body

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def field(data: dict[str, Any], name: str) -> str:
    value = data.get(name, "")
    if isinstance(value, list):  # a repeated field: the last one wins, as in browsers
        value = value[-1] if value else ""
    return str(value)
