#pragma once

// The frontend's Schedule calls: CreateSchedule, DescribeSchedule, UpdateSchedule,
// PatchSchedule, DeleteSchedule, ListSchedules, CountSchedules and ListScheduleMatchingTimes.
// Each validates the request as Temporal's frontend does (its texts), makes a spec canonical
// (scheduler/schedule_spec.h), and calls history, which hosts schedules; lists read the
// schedules' visibility rows. Blocking; run on the executor. Thread-safe.

#include "absl/status/status.h"
#include "common/namespace_registry.h"
#include "frontend/validation.h"
#include "history/history_client.h"
#include "persistence/stores.h"
#include "temporal/api/workflowservice/v1/request_response.pb.h"

namespace almanac::frontend {

class ScheduleCalls {
 public:
  ScheduleCalls(NamespaceRegistry* namespaces, history::HistoryClient* history,
                persistence::VisibilityStore* visibility, ValidationLimits limits)
      : namespaces_(namespaces), history_(history), visibility_(visibility), limits_(limits) {}

  absl::Status Create(const temporal::api::workflowservice::v1::CreateScheduleRequest& req,
                      temporal::api::workflowservice::v1::CreateScheduleResponse* resp);
  absl::Status Describe(const temporal::api::workflowservice::v1::DescribeScheduleRequest& req,
                        temporal::api::workflowservice::v1::DescribeScheduleResponse* resp);
  absl::Status Update(const temporal::api::workflowservice::v1::UpdateScheduleRequest& req);
  absl::Status Patch(const temporal::api::workflowservice::v1::PatchScheduleRequest& req);
  absl::Status Delete(const temporal::api::workflowservice::v1::DeleteScheduleRequest& req);
  absl::Status List(const temporal::api::workflowservice::v1::ListSchedulesRequest& req,
                    temporal::api::workflowservice::v1::ListSchedulesResponse* resp);
  absl::Status Count(const temporal::api::workflowservice::v1::CountSchedulesRequest& req,
                     temporal::api::workflowservice::v1::CountSchedulesResponse* resp);
  absl::Status MatchingTimes(
      const temporal::api::workflowservice::v1::ListScheduleMatchingTimesRequest& req,
      temporal::api::workflowservice::v1::ListScheduleMatchingTimesResponse* resp);

 private:
  absl::StatusOr<v1::NamespaceRecord> Namespace(const std::string& name) const;
  // Checks a schedule's definition and makes its spec canonical.
  absl::Status PrepareSchedule(const v1::NamespaceRecord& ns,
                               temporal::api::schedule::v1::Schedule* schedule) const;
  // Checks search attributes against the namespace and stamps their types.
  absl::Status CheckSearchAttributes(const v1::NamespaceRecord& ns,
                                     temporal::api::common::v1::SearchAttributes* attributes) const;

  NamespaceRegistry* const namespaces_;
  history::HistoryClient* const history_;
  persistence::VisibilityStore* const visibility_;
  const ValidationLimits limits_;
};

}  // namespace almanac::frontend
