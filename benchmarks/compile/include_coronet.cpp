// The cost of the one include a coronet program starts with, and nothing else.
#include <coronet/coronet.hpp>
