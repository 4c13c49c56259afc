// send_file(): a file's bytes into a socket with sendfile(2), in the write queue's order.
#include "support.hpp"
TEST_CASE("placeholder") {}
