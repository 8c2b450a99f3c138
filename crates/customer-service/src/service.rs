//! The `customer.v1.CustomerService` handlers.

use std::sync::Arc;

use api::customer::v1::{
    CreateCustomerRequest, Customer, DeleteCustomerRequest, GetCustomerRequest,
    ListCustomersRequest, ListCustomersResponse, UpdateCustomerRequest,
    customer_service_server::CustomerService,
};
use service_runtime::{mask::UpdateMask, paging::PageTokens, validate::Violations};
use tonic::{Request, Response, Status};

use crate::{
    error::CustomerError,
    store::{self, CustomerTable, OUTPUT_ONLY, UPDATABLE},
};

const PAGE_TOKENS: PageTokens = PageTokens::new("customer.v1.ListCustomers");

/// The service implementation over a shared [`CustomerTable`].
#[derive(Debug, Clone)]
pub struct CustomerApi {
    table: Arc<CustomerTable>,
}

impl CustomerApi {
    pub fn new(table: Arc<CustomerTable>) -> Self {
        Self { table }
    }

    fn get(&self, req: GetCustomerRequest) -> Result<Customer, CustomerError> {
        require_id("id", &req.id)?;
        Ok(self.table.get(&req.id)?)
    }

    fn list(&self, req: ListCustomersRequest) -> Result<ListCustomersResponse, CustomerError> {
        let (customers, next_page_token) =
            self.table
                .list_page(&PAGE_TOKENS, req.page_size, &req.page_token, None)?;
        Ok(ListCustomersResponse {
            customers,
            next_page_token,
        })
    }

    fn create(&self, req: CreateCustomerRequest) -> Result<Customer, CustomerError> {
        let mut customer = req
            .customer
            .ok_or_else(|| Violations::one("customer", "is required"))?;
        store::normalize(&mut customer);
        store::validate(&customer).into_result()?;
        Ok(self.table.create(customer)?)
    }

    fn update(&self, req: UpdateCustomerRequest) -> Result<Customer, CustomerError> {
        let mut patch = req
            .customer
            .ok_or_else(|| Violations::one("customer", "is required"))?;
        store::normalize(&mut patch);
        let mut violations = Violations::new();
        violations.check(
            "customer.id",
            service_runtime::validate::required(&patch.id),
        );
        let mask = UpdateMask::parse(req.update_mask.as_ref(), UPDATABLE, OUTPUT_ONLY)
            .unwrap_or_else(|v| {
                violations.extend(v);
                UpdateMask::Implicit
            });
        violations.into_result()?;
        self.table.update(&patch.id, |current| {
            store::apply(current, &patch, &mask);
            store::validate(current)
                .into_result()
                .map_err(CustomerError::from)
        })
    }

    fn delete(&self, req: DeleteCustomerRequest) -> Result<(), CustomerError> {
        require_id("id", &req.id)?;
        self.table.delete(&req.id)?;
        Ok(())
    }
}

fn require_id(field: &str, id: &str) -> Result<(), Violations> {
    Violations::one_if(field, service_runtime::validate::required(id))
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn get_customer(
        &self,
        request: Request<GetCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        Ok(Response::new(self.get(request.into_inner())?))
    }

    async fn list_customers(
        &self,
        request: Request<ListCustomersRequest>,
    ) -> Result<Response<ListCustomersResponse>, Status> {
        Ok(Response::new(self.list(request.into_inner())?))
    }

    async fn create_customer(
        &self,
        request: Request<CreateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let customer = self.create(request.into_inner())?;
        tracing::info!(id = %customer.id, "customer created");
        Ok(Response::new(customer))
    }

    async fn update_customer(
        &self,
        request: Request<UpdateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        Ok(Response::new(self.update(request.into_inner())?))
    }

    async fn delete_customer(
        &self,
        request: Request<DeleteCustomerRequest>,
    ) -> Result<Response<()>, Status> {
        self.delete(request.into_inner())?;
        Ok(Response::new(()))
    }
}
