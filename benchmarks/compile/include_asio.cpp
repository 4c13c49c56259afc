// The cost of the include a plain Asio program usually starts with.
#include <asio.hpp>
