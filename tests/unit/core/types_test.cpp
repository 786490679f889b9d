#include "sagaflow/core/types.hpp"

#include <gtest/gtest.h>

namespace sagaflow::core {

TEST(Types, StatusNamesMatchReferenceWording) {
  EXPECT_EQ(ToString(OrderStatus::kOk), "OK");
  EXPECT_EQ(ToString(OrderStatus::kNotOk), "NOT OK");
  EXPECT_EQ(static_cast<int>(OrderStatus::kNotOk), 4);
}

TEST(Types, OnlyOkAndNotOkAreFinal) {
  EXPECT_TRUE(IsFinal(OrderStatus::kOk));
  EXPECT_TRUE(IsFinal(OrderStatus::kNotOk));
  for (auto s : {OrderStatus::kUnknown, OrderStatus::kNew, OrderStatus::kProcess, OrderStatus::kCanceled}) {
    EXPECT_FALSE(IsFinal(s)) << ToString(s);
  }
}

TEST(Types, CompensationRunsOnTheSameServiceAsItsStep) {
  EXPECT_EQ(ServiceOf(Step::kReleaseStock), ServiceOf(Step::kReserveStock));
  EXPECT_EQ(ServiceOf(Step::kCharge), Service::kPayment);
}

}  // namespace sagaflow::core
