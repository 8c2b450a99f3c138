//! The `customer.v1.CustomerService` handlers: thin glue from the generated
//! trait to the shared standard methods.

use std::sync::Arc;

use api::customer::v1::{
    CreateCustomerRequest, Customer, DeleteCustomerRequest, GetCustomerRequest,
    ListCustomersRequest, ListCustomersResponse, UpdateCustomerRequest,
    customer_service_server::CustomerService,
};
use resource_store::{
    Crud, Store,
    paging::{PageTokenKey, PageTokens},
};
use tonic::{Request, Response, Status};

use crate::store::Customers;

const PAGE_TOKENS: PageTokens = PageTokens::new("customer.v1.ListCustomers");

/// The service implementation over a shared customer [`Store`].
#[derive(Debug, Clone)]
pub struct CustomerApi {
    customers: Crud<Customers>,
}

impl CustomerApi {
    pub fn new(store: Arc<dyn Store<Customers>>, key: PageTokenKey) -> Self {
        Self {
            customers: Crud::new(store, PAGE_TOKENS.with_key(key)),
        }
    }
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    async fn get_customer(
        &self,
        request: Request<GetCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let customer = self.customers.get(&request.into_inner().id).await?;
        Ok(Response::new(customer))
    }

    async fn list_customers(
        &self,
        request: Request<ListCustomersRequest>,
    ) -> Result<Response<ListCustomersResponse>, Status> {
        let req = request.into_inner();
        let (customers, next_page_token) = self
            .customers
            .list(req.page_size, &req.page_token, None)
            .await?;
        Ok(Response::new(ListCustomersResponse {
            customers,
            next_page_token,
        }))
    }

    async fn create_customer(
        &self,
        request: Request<CreateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let customer = self.customers.create(request.into_inner().customer).await?;
        tracing::info!(id = %customer.id, "customer created");
        Ok(Response::new(customer))
    }

    async fn update_customer(
        &self,
        request: Request<UpdateCustomerRequest>,
    ) -> Result<Response<Customer>, Status> {
        let req = request.into_inner();
        let customer = self
            .customers
            .update(req.customer, req.update_mask.as_ref())
            .await?;
        Ok(Response::new(customer))
    }

    async fn delete_customer(
        &self,
        request: Request<DeleteCustomerRequest>,
    ) -> Result<Response<()>, Status> {
        self.customers.delete(&request.into_inner().id).await?;
        Ok(Response::new(()))
    }
}
