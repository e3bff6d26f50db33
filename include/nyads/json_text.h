// json_quote: a string as a JSON string literal, for the tools' --json output.
#pragma once

#include <string>
#include <string_view>

namespace nyads {

// "text" with '"', '\\' and control bytes escaped (\n, \t, \uXXXX), and each byte that is not
// part of well-formed UTF-8 as \ufffd (JSON text is UTF-8); other bytes as they are.
std::string json_quote(std::string_view text);

}  // namespace nyads
