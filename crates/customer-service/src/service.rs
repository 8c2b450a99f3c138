//! The `customer.v1.CustomerService` handlers: thin glue from the generated
//! trait to the shared standard methods.

use std::sync::Arc;

use api::customer::v1::{
    CreateCustomerRequest, Customer, DeleteCustomerRequest, GetCustomerRequest,
    ListCustomersRequest, ListCustomersResponse, UpdateCustomerRequest,
    customer_service_server::CustomerService,
};
use resource_store::{CrudError, paging::PageTokens};
use tonic::{Request, Response, Status};

use crate::store::CustomerTable;

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
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn get_customer(
        &self,
        request: Request<GetCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let customer = self.table.get_checked(&request.into_inner().id)?;
        Ok(Response::new(customer))
    }

    async fn list_customers(
        &self,
        request: Request<ListCustomersRequest>,
    ) -> Result<Response<ListCustomersResponse>, Status> {
        let req = request.into_inner();
        let (customers, next_page_token) = self
            .table
            .list_page(&PAGE_TOKENS, req.page_size, &req.page_token, None)
            .map_err(CrudError::from)?;
        Ok(Response::new(ListCustomersResponse {
            customers,
            next_page_token,
        }))
    }

    async fn create_customer(
        &self,
        request: Request<CreateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let customer = self.table.create_checked(request.into_inner().customer)?;
        tracing::info!(id = %customer.id, "customer created");
        Ok(Response::new(customer))
    }

    async fn update_customer(
        &self,
        request: Request<UpdateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let req = request.into_inner();
        let customer = self
            .table
            .update_checked(req.customer, req.update_mask.as_ref())?;
        Ok(Response::new(customer))
    }

    async fn delete_customer(
        &self,
        request: Request<DeleteCustomerRequest>,
    ) -> Result<Response<()>, Status> {
        self.table.delete_checked(&request.into_inner().id)?;
        Ok(Response::new(()))
    }
}
