// json_quote: a string as a JSON string literal, for the tools' --json output.
#pragma once

#include <string>
#include <string_view>

namespace nyads {

// "text" with '"', '\\' and control bytes escaped (\n, \t, \uXXXX); other bytes as they are.
std::string json_quote(std::string_view text);

}  // namespace nyads
