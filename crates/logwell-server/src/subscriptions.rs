//! PutSubscriptionFilter, DescribeSubscriptionFilters and DeleteSubscriptionFilter: definitions
//! kept by storage, delivered by `logwell-delivery`.

use crate::App;
use logwell_filter::FilterPattern;
use logwell_model::api::Empty;
use logwell_model::api_subscriptions::*;
use logwell_model::{validate, ApiError, ErrorKind};
use logwell_storage::catalog::{self, MAX_SUBSCRIPTION_FILTERS};

fn filter_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 512 || name.contains([':', '*']) {
        return Err(ApiError::constraint(
            name,
            "filterName",
            "satisfy regular expression pattern: [^:*]* and have length between 1 and 512",
        ));
    }
    Ok(())
}

pub(crate) async fn put(app: &App, r: PutSubscriptionFilterRequest) -> Result<Empty, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    filter_name(&r.filter_name)?;
    FilterPattern::parse(&r.filter_pattern).map_err(|e| ApiError::invalid(e.to_string()))?;
    let distribution = match r.distribution.as_deref() {
        None | Some("ByLogStream") => "ByLogStream",
        Some("Random") => "Random",
        Some(other) => {
            return Err(ApiError::constraint(
                other,
                "distribution",
                "satisfy enum value set: [Random, ByLogStream]",
            ))
        }
    };
    let existing = app.engine.subscription_filters(&r.log_group_name)?;
    if !existing.contains_key(&r.filter_name) && existing.len() >= MAX_SUBSCRIPTION_FILTERS {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            "Resource limit exceeded.",
        ));
    }
    // As CloudWatch does: a test message first; a destination that cannot take it is refused.
    app.delivery.check_destination(&r.destination_arn).await?;
    app.engine
        .put_subscription_filter(
            &r.log_group_name,
            &r.filter_name,
            catalog::SubscriptionFilter {
                filter_pattern: r.filter_pattern,
                destination_arn: r.destination_arn,
                role_arn: r.role_arn,
                distribution: distribution.into(),
                creation_time: logwell_model::now_millis(),
                delivered_seq: 0,
            },
        )
        .await?;
    app.delivery.changed();
    Ok(Empty {})
}

pub(crate) async fn describe(
    app: &App,
    r: DescribeSubscriptionFiltersRequest,
) -> Result<DescribeSubscriptionFiltersResponse, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    let prefix = r.filter_name_prefix.unwrap_or_default();
    let subscription_filters = app
        .engine
        .subscription_filters(&r.log_group_name)?
        .into_iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(filter_name, f)| SubscriptionFilter {
            filter_name,
            log_group_name: r.log_group_name.clone(),
            filter_pattern: f.filter_pattern,
            destination_arn: f.destination_arn,
            role_arn: f.role_arn,
            distribution: f.distribution,
            creation_time: f.creation_time,
        })
        .take(r.limit.unwrap_or(50).clamp(1, 50) as usize)
        .collect();
    Ok(DescribeSubscriptionFiltersResponse {
        subscription_filters,
        next_token: None,
    })
}

pub(crate) async fn delete(
    app: &App,
    r: DeleteSubscriptionFilterRequest,
) -> Result<Empty, ApiError> {
    validate::log_group_name(&r.log_group_name, "logGroupName")?;
    app.engine
        .delete_subscription_filter(&r.log_group_name, &r.filter_name)
        .await?;
    app.delivery.changed();
    Ok(Empty {})
}
