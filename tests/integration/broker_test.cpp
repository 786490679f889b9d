// placeholder: replaced by the transactional produce / read_committed test.
#include <gtest/gtest.h>
